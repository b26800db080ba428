// Tests for src/api/routes.cpp: the router against the original's exact method and path rules.
#include <catch2/catch.hpp>

#include "api/routes.hpp"

using namespace cx;

TEST_CASE("router: exact methods and paths, query strings not stripped", "[api]") {
  struct Row {
    const char* method;
    const char* path;
    const char* route; // the matched route's documented path, or nullptr for 404
    const char* param;
  };
  const Row rows[] = {
      {"GET", "/", "/", ""},
      {"GET", "/health", "/health", ""},
      {"GET", "/openapi.json", "/openapi.json", ""},
      {"GET", "/health?x", nullptr, ""},  // the query string is part of the path
      {"GET", "/health/", nullptr, ""},   // no prefix or trailing-slash matching
      {"DELETE", "/health", nullptr, ""}, // wrong method
      {"get", "/health", nullptr, ""},    // the caller upper-cases; the table is exact
      {"GET", "", nullptr, ""},
      {"GET", "/HEALTH", nullptr, ""},
      {"POST", "/", nullptr, ""},
  };
  for (const auto& r : rows) {
    INFO(r.method << " " << r.path);
    auto m = api::match_route(r.method, r.path);
    if (!r.route) {
      CHECK(!m);
      continue;
    }
    REQUIRE(m);
    CHECK(m->route->path == r.route);
    CHECK(m->param == r.param);
  }
}

TEST_CASE("route table: unique method+path, listed order as GET / shows it", "[api]") {
  auto rs = api::routes();
  for (size_t i = 0; i < rs.size(); ++i)
    for (size_t j = i + 1; j < rs.size(); ++j)
      CHECK(!(rs[i].method == rs[j].method && rs[i].path == rs[j].path));
  // GET / itself is not in its own endpoint list, as in the original.
  for (const auto& r : rs)
    CHECK(r.listed == (r.path != "/"));
}
