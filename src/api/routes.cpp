// The route table and the router; see routes.hpp. The operation texts are our own description
// of each route (dispatcher-and-api §6.5), written as OpenAPI 3.1 operation objects.
#include "api/routes.hpp"

#include <array>

#include "api/handlers.hpp"

namespace cx::api {

namespace {

constexpr std::string_view kIndexOp = R"json({
 "operationId": "index",
 "summary": "Service index",
 "description": "Names the service, its version and the two OpenAPI documents, and lists the endpoints.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The index.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IndexResponse"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kHealthOp = R"json({
 "operationId": "health",
 "summary": "Liveness check",
 "description": "Answers 200 while the server runs. Like every route it passes the pre-route auth gate first: with no auth hook and api_auth_default other than allow, it is refused with 403.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The server is up.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthResponse"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kOpenapiOp = R"json({
 "operationId": "openapi",
 "summary": "This document",
 "description": "The OpenAPI document of the routes this server serves. It is built into the binary.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The OpenAPI document.",
          "content": {"application/json": {"schema": {"type": "object"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::array kRoutes{
    Route{"GET", "/health", handle_health, true, nullptr, "", kHealthOp},
    Route{"GET", "/openapi.json", handle_openapi, true, nullptr, "", kOpenapiOp},
    Route{"GET", "/", handle_index, false, nullptr, "", kIndexOp},
};

// Matches `path` against a documented pattern with at most one `{param}` segment.
bool match_path(const Route& r, std::string_view path, std::string& param) {
  size_t open = r.path.find('{');
  if (open == std::string_view::npos) return path == r.path;
  size_t close = r.path.find('}', open);
  std::string_view prefix = r.path.substr(0, open);
  std::string_view suffix = r.path.substr(close + 1);
  if (path.size() < prefix.size() + suffix.size()) return false;
  if (path.substr(0, prefix.size()) != prefix) return false;
  if (path.substr(path.size() - suffix.size()) != suffix) return false;
  std::string_view value = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (!r.param_ok || !r.param_ok(value)) return false;
  param.assign(value);
  return true;
}

} // namespace

std::span<const Route> routes() {
  return kRoutes;
}

std::optional<RouteMatch> match_route(std::string_view method, std::string_view path) {
  std::string param;
  for (const auto& r : kRoutes) {
    if (r.method != method) continue;
    param.clear();
    if (match_path(r, path, param)) return RouteMatch{&r, std::move(param)};
  }
  return std::nullopt;
}

} // namespace cx::api
