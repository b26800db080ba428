// The OpenAPI documents; see openapi.hpp. The text below is our own description of the API
// (dispatcher-and-api §6); the component names are the ones clients of the original know.
#include "api/openapi.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "api/routes.hpp"
#include "base/status.hpp"
#include "base/strings.hpp"
#include "base/version.hpp"
#include "json/writer.hpp"

namespace cx::api {

namespace {

constexpr std::string_view kHead = R"json({
 "openapi": "3.1.0",
 "info": {
  "title": "ctrl-exec API",
  "version": "",
  "summary": "Run allowlisted scripts on a fleet of agents over mutual TLS.",
  "description": "The HTTP JSON API of a ctrl-exec dispatcher. Every request first passes a pre-route auth gate: the auth hook is asked with action api (token from the JSON body), or, with no hook configured, api_auth_default decides (deny refuses everything with 403 \"no auth hook configured\"). Endpoints that reach agents then ask the hook again with their own action. Responses are HTTP/1.0 with a JSON body; a client that sends Connection: keep-alive may send further requests on the same connection. Beyond api_max_children requests in progress at once, the server answers 503. A request of more than 32 header lines gets 431 and a body over 1048576 bytes gets 413. At most 500 hosts are accepted in one request.",
  "license": {"name": "AGPL-3.0-only", "identifier": "AGPL-3.0-only"}},
 "servers": [
  {"url": "http://{host}:{port}", "description": "plain HTTP (the default)",
   "variables": {"host": {"default": "localhost"}, "port": {"default": "7445"}}},
  {"url": "https://{host}:{port}", "description": "TLS, when api_cert and api_key are configured",
   "variables": {"host": {"default": "localhost"}, "port": {"default": "7445"}}}],
 "tags": [
  {"name": "meta", "description": "The service itself"},
  {"name": "agents", "description": "Work on agents"},
  {"name": "runs", "description": "Stored run results"}]})json";

constexpr std::string_view kComponents = R"json({
 "schemas": {
  "HealthResponse": {"type": "object", "required": ["ok", "version"],
   "properties": {"ok": {"type": "boolean", "const": true}, "version": {"type": "string"}}},
  "IndexResponse": {"type": "object", "required": ["name", "version", "spec", "live_spec", "endpoints"],
   "properties": {
    "name": {"type": "string", "const": "ctrl-exec-api"},
    "version": {"type": "string"},
    "spec": {"type": "string", "description": "path of the static OpenAPI document"},
    "live_spec": {"type": "string", "description": "path of the live OpenAPI document"},
    "endpoints": {"type": "array", "items": {"type": "object", "required": ["method", "path"],
     "properties": {"method": {"type": "string"}, "path": {"type": "string"}}}}}},
  "PingRequest": {"type": "object", "required": ["hosts"],
   "properties": {
    "hosts": {"type": "array", "minItems": 1, "maxItems": 500,
     "description": "registry names, each optionally with :<port>",
     "items": {"type": "string"}},
    "username": {"type": "string", "description": "passed to the auth hook"},
    "token": {"type": "string", "description": "passed to the auth hook"}}},
  "PingResult": {"type": "object", "required": ["host", "status"],
   "properties": {
    "host": {"type": "string", "description": "the registry name"},
    "status": {"type": "string", "enum": ["ok", "error"]},
    "rtt": {"type": "string", "examples": ["12ms"]},
    "version": {"type": "string"},
    "expiry": {"type": "string", "description": "the agent certificate's notAfter"},
    "staged": {"type": "boolean"},
    "reqid": {"type": "string"},
    "reported_hostname": {"type": "string", "description": "the agent's own name, when it differs"},
    "error": {"type": "string"}}},
  "PingResponse": {"type": "object", "required": ["ok", "results"],
   "properties": {"ok": {"type": "boolean", "const": true},
    "results": {"type": "array", "items": {"$ref": "#/components/schemas/PingResult"}}}},
  "RunRequest": {"type": "object", "required": ["hosts", "script"],
   "properties": {
    "hosts": {"type": "array", "minItems": 1, "maxItems": 500,
     "description": "registry names, each optionally with :<port>",
     "items": {"type": "string"}},
    "script": {"type": "string", "pattern": "^[\\w-]+$", "description": "an allowlisted script name"},
    "args": {"type": "array", "items": {"type": "string"}, "default": [],
     "description": "passed to the script as argv, untouched"},
    "username": {"type": "string", "description": "passed to the auth hooks and the script"},
    "token": {"type": "string", "description": "passed to the auth hooks and the script"},
    "async": {"type": "boolean", "default": false,
     "description": "answer 202 once submitted; collect with GET /status/{reqid}"}}},
  "RunResult": {"type": "object", "required": ["host", "exit"], "additionalProperties": true,
   "properties": {
    "host": {"type": "string"},
    "script": {"type": "string"},
    "exit": {"type": "integer", "description": "the script's exit status; -1 for a dispatcher-side failure or an agent refusal"},
    "stdout": {"type": "string"},
    "stderr": {"type": "string"},
    "rtt": {"type": "string"},
    "reqid": {"type": "string"},
    "reported_hostname": {"type": "string"},
    "error": {"type": "string"}}},
  "RunResponse": {"type": "object", "required": ["ok", "reqid", "results"],
   "properties": {"ok": {"type": "boolean", "const": true}, "reqid": {"type": "string"},
    "results": {"type": "array", "items": {"$ref": "#/components/schemas/RunResult"}}}},
  "AsyncSubmitResult": {"type": "object", "required": ["host", "status"],
   "properties": {
    "host": {"type": "string"},
    "script": {"type": "string"},
    "status": {"type": "string", "enum": ["accepted", "busy", "error"]},
    "reqid": {"type": "string"},
    "rtt": {"type": "string"},
    "error": {"type": "string"}}},
  "AsyncSubmitResponse": {"type": "object", "required": ["ok", "reqid", "async", "results"],
   "properties": {"ok": {"type": "boolean", "const": true}, "reqid": {"type": "string"},
    "async": {"type": "boolean", "const": true},
    "results": {"type": "array", "items": {"$ref": "#/components/schemas/AsyncSubmitResult"}}}},
  "HostStatus": {"type": "object", "required": ["status"],
   "properties": {
    "status": {"type": "string", "enum": ["accepted", "running", "done", "expired", "busy", "error"]},
    "exit": {"type": "integer"},
    "stdout": {"type": "string"},
    "stderr": {"type": "string"},
    "error": {"type": "string"},
    "fetch_error": {"type": "string", "description": "the last attempt to fetch the result failed; it is retried on the next request"}}},
  "StatusResponse": {"type": "object", "required": ["ok", "reqid", "script", "mode", "complete"],
   "properties": {
    "ok": {"type": "boolean", "const": true},
    "reqid": {"type": "string"},
    "script": {"type": "string"},
    "mode": {"type": "string", "enum": ["sync", "async"]},
    "hosts": {"oneOf": [
     {"type": "object", "description": "async: per-host state",
      "additionalProperties": {"$ref": "#/components/schemas/HostStatus"}},
     {"type": "array", "description": "sync: the hosts as submitted", "items": {"type": "string"}}]},
    "results": {"type": "array", "description": "sync only",
     "items": {"$ref": "#/components/schemas/RunResult"}},
    "completed": {"type": "integer", "description": "sync only: unix time"},
    "created": {"type": "integer", "description": "async only: unix time"},
    "pending": {"type": "array", "description": "async only", "items": {"type": "string"}},
    "complete": {"type": "boolean"}}},
  "DiscoveryRequest": {"type": "object",
   "properties": {
    "hosts": {"type": "array", "maxItems": 500,
     "description": "registry names; missing or empty means every registered agent",
     "items": {"type": "string"}},
    "username": {"type": "string"},
    "token": {"type": "string"}}},
  "ScriptEntry": {"type": "object", "required": ["name"],
   "properties": {
    "name": {"type": "string"},
    "path": {"type": "string"},
    "executable": {"type": "boolean"},
    "profile": {"type": "string"},
    "schema": {"type": "object", "description": "the script's argument schema, as the agent has it"},
    "schema_version": {"type": "string"}}},
  "HostCapabilities": {"type": "object", "required": ["host", "status"],
   "properties": {
    "host": {"type": "string"},
    "status": {"type": "string", "enum": ["ok", "error"]},
    "version": {"type": "string"},
    "reported_hostname": {"type": "string"},
    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    "scripts": {"type": "array", "items": {"$ref": "#/components/schemas/ScriptEntry"}},
    "error": {"type": "string"},
    "rtt": {"type": "string"}}},
  "DiscoveryResponse": {"type": "object", "required": ["ok", "hosts"],
   "properties": {"ok": {"type": "boolean", "const": true},
    "hosts": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/HostCapabilities"}}}},
  "ErrorResponse": {"type": "object", "required": ["ok", "error"],
   "properties": {
    "ok": {"type": "boolean", "const": false},
    "error": {"type": "string", "description": "a short class, or the auth hook's reason"},
    "detail": {"type": "string"},
    "code": {"type": "integer", "description": "1 denied, 2 bad credentials, 3 insufficient privilege, 4 locked; any other value is the auth hook's exit status"},
    "conflicts": {"type": "array", "description": "with 409: the held <host>:<script> pairs",
     "items": {"type": "string"}}}}},
 "responses": {
  "BadRequest": {"description": "The request is malformed.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "Forbidden": {"description": "The auth hook (or api_auth_default) refused the request. With auth_deny_generic on, the body is only {\"ok\":false,\"error\":\"forbidden\"}.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "NotFound": {"description": "No such route, no such agent, or no result for this request id.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "Conflict": {"description": "A host+script pair is locked by another dispatch.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "ServerError": {"description": "The server could not read what it needed.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "ServiceUnavailable": {"description": "More than api_max_children requests are in progress.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
  "DiscoverySuccess": {"description": "The capabilities of each agent, keyed by registry name.",
   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DiscoveryResponse"}}}}}})json";

using rapidjson::StringRef;
using Alloc = json::Document::AllocatorType;

json::Document parse_builtin(std::string_view text) {
  auto doc = json::parse(text);
  CX_CHECK(doc.ok()); // built-in text: a parse failure is a bug, caught by the unit tests
  return std::move(doc).value();
}

json::Value str_value(std::string_view s, Alloc& a) {
  return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

// doc[key], created as an empty object when absent.
json::Value& object_member(json::Value& obj, std::string_view key, Alloc& a) {
  auto it = obj.FindMember(str_value(key, a));
  if (it != obj.MemberEnd()) return it->value;
  obj.AddMember(str_value(key, a), json::Value(rapidjson::kObjectType), a);
  return (obj.MemberEnd() - 1)->value;
}

std::string build_static() {
  json::Document doc = parse_builtin(kHead);
  auto& a = doc.GetAllocator();
  doc["info"]["version"] = str_value(version(), a);
  json::Value paths(rapidjson::kObjectType);
  for (const Route& r : routes()) {
    json::Document op = parse_builtin(r.operation);
    if (r.param_ok) {
      // The path parameter comes from the table, so the documented pattern is the served one.
      size_t open = r.path.find('{'), close = r.path.find('}');
      std::string_view name = r.path.substr(open + 1, close - open - 1);
      json::Value p(rapidjson::kObjectType);
      p.AddMember("name", str_value(name, a), a);
      p.AddMember("in", "path", a);
      p.AddMember("required", true, a);
      json::Value schema(rapidjson::kObjectType);
      schema.AddMember("type", "string", a);
      schema.AddMember("pattern", str_value(r.param_pattern, a), a);
      p.AddMember("schema", schema, a);
      json::Value params(rapidjson::kArrayType);
      params.PushBack(p, a);
      if (auto it = op.FindMember("parameters"); it != op.MemberEnd())
        for (auto& extra : it->value.GetArray())
          params.PushBack(json::Value(extra, a), a);
      op.RemoveMember("parameters");
      op.AddMember("parameters", params, a);
    }
    json::Value& item = object_member(paths, r.path, a);
    item.AddMember(str_value(to_lower(r.method), a), json::Value(op, a), a);
  }
  doc.AddMember("paths", paths, a);
  json::Document components = parse_builtin(kComponents);
  doc.AddMember("components", json::Value(components, a), a);
  return json::to_string(doc);
}

} // namespace

const std::string& static_document() {
  static const std::string doc = build_static();
  return doc;
}

} // namespace cx::api
