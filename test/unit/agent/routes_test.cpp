// Tests for src/agent/routes.cpp (tag [agent]): which method and path reach which handler.
#include <catch2/catch.hpp>

#include "agent/handlers.hpp"
#include "agent/routes.hpp"

using namespace cx::agent;

TEST_CASE("the route table", "[agent]") {
  struct Row {
    const char* method;
    const char* path;
    Handler handler; // nullptr: 404
    const char* param;
    bool map_gated = true;
  };
  const Row rows[] = {
      {"POST", "/run", handle_run, ""},
      {"POST", "/ping", handle_ping, ""},
      {"GET", "/capabilities", handle_capabilities, ""},
      {"GET", "/result/abc-1_Z", handle_result, "abc-1_Z"},
      {"POST", "/rotate-serial", handle_rotate, ""},
      {"POST", "/renew", handle_renew, "", false},
      {"POST", "/renew-complete", handle_renew_complete, "", false},
      // Methods are compared as sent, paths exactly (no query strings, no trailing slash).
      {"GET", "/run", nullptr, ""},
      {"post", "/run", nullptr, ""},
      {"POST", "/run/", nullptr, ""},
      {"POST", "/run?x=1", nullptr, ""},
      {"POST", "/capabilities", nullptr, ""},
      {"GET", "/", nullptr, ""},
      {"GET", "", nullptr, ""},
      // /result/<reqid>: a non-empty reqid of [A-Za-z0-9_-].
      {"GET", "/result/", nullptr, ""},
      {"GET", "/result", nullptr, ""},
      {"GET", "/result/a.b", nullptr, ""},
      {"GET", "/result/a/b", nullptr, ""},
      {"POST", "/result/abc", nullptr, ""},
      {"GET", "/resultabc", nullptr, ""},
  };
  for (const auto& r : rows) {
    INFO(r.method << " " << r.path);
    auto m = match_route(r.method, r.path);
    if (!r.handler) {
      CHECK_FALSE(m);
      continue;
    }
    REQUIRE(m);
    CHECK(m->route->handler == r.handler);
    CHECK(m->param == r.param);
    CHECK(m->route->map_gated == r.map_gated);
  }
}

TEST_CASE("every route is reachable through the router", "[agent]") {
  for (const auto& r : routes()) {
    std::string path(r.path);
    if (r.param_ok) path += "r1";
    INFO(r.method << " " << path);
    auto m = match_route(r.method, path);
    REQUIRE(m);
    CHECK(m->route == &r);
  }
}
