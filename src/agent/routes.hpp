// The agent's route table (agent-and-wire §3.3): one row per served method and path with its
// handler. Anything else is 404 {"error":"not found"}.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "agent/context.hpp"

namespace cx::agent {

using Handler = void (*)(Context& ctx, Call& call);

struct Route {
  std::string_view method; // as sent: the agent compares methods case-sensitively
  // The whole path; or, with `param_ok`, the prefix before a non-empty parameter that must
  // satisfy it (GET /result/<reqid>).
  std::string_view path;
  bool (*param_ok)(std::string_view value);
  Handler handler;
  // Refused to a peer whose certificate is not in the trusted map (§3.3 "Map-gated"): the
  // server answers such a peer as soon as the request line and headers are in.
  bool map_gated = true;
};

std::span<const Route> routes();

struct RouteMatch {
  const Route* route;
  std::string_view param; // a view into the matched path; empty when the route has none
};

// The route for `method` and `path`, or nullopt (404).
std::optional<RouteMatch> match_route(std::string_view method, std::string_view path);

} // namespace cx::agent
