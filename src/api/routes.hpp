// The API's route table: one row per served method and path, with its handler and its OpenAPI
// operation. The router, GET /'s endpoint list and both OpenAPI documents are derived from it,
// so what is documented cannot drift from what is served.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cx::api {

class Exchange;
using Handler = void (*)(Exchange&);

struct Route {
  std::string_view method; // upper case, as the router compares it
  // The documented path. A segment written `{name}` is a path parameter whose value must
  // satisfy `param_ok`; `param_pattern` is the same rule as a regex, for the document only.
  std::string_view path;
  Handler handler;
  bool listed; // appears in GET /'s "endpoints" (the original leaves out GET / itself)
  bool (*param_ok)(std::string_view value);
  std::string_view param_pattern;
  std::string_view operation; // the OpenAPI operation object, JSON text
};

// Every route, in the order GET / lists them.
std::span<const Route> routes();

struct RouteMatch {
  const Route* route;
  std::string param; // the path parameter's value ("" when the route has none)
};

// The route for an upper-cased method and a raw path (query string included, as in the
// original: `/health?x` matches nothing). nullopt means 404 "no route for <METHOD> <path>".
std::optional<RouteMatch> match_route(std::string_view method, std::string_view path);

} // namespace cx::api
