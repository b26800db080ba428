// The agent's route table and router; see routes.hpp.
#include "agent/routes.hpp"

#include <array>

#include "agent/handlers.hpp"
#include "base/strings.hpp"

namespace cx::agent {

namespace {

constexpr std::array kRoutes{
    Route{"POST", "/run", nullptr, handle_run},
    Route{"POST", "/ping", nullptr, handle_ping},
    Route{"GET", "/capabilities", nullptr, handle_capabilities},
    Route{"GET", "/result/", is_reqid, handle_result},
    Route{"POST", "/rotate-serial", nullptr, handle_rotate},
    Route{"POST", "/renew", nullptr, handle_renew, false},
    Route{"POST", "/renew-complete", nullptr, handle_renew_complete, false},
};

} // namespace

std::span<const Route> routes() {
  return kRoutes;
}

std::optional<RouteMatch> match_route(std::string_view method, std::string_view path) {
  for (const auto& r : kRoutes) {
    if (r.method != method) continue;
    if (!r.param_ok) {
      if (path == r.path) return RouteMatch{&r, {}};
      continue;
    }
    if (path.size() <= r.path.size() || path.substr(0, r.path.size()) != r.path) continue;
    std::string_view value = path.substr(r.path.size());
    if (r.param_ok(value)) return RouteMatch{&r, value};
  }
  return std::nullopt;
}

} // namespace cx::agent
