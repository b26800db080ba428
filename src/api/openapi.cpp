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
  "HostState": {"type": "string", "enum": ["ok", "error", "timeout", "unreachable", "busy", "denied"],
   "description": "How the exchange with this host ended: ok (the agent answered as asked; a script's non-zero exit is still ok), error, timeout, unreachable (no such name, refused, no route), busy (already running there) or denied (the agent refused this dispatcher or its hook said no)."},
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
    "error": {"type": "string"},
    "state": {"$ref": "#/components/schemas/HostState"}}},
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
    "error": {"type": "string"},
    "truncated": {"type": "boolean", "description": "an output stream hit the agent's script_output_limit"},
    "timed_out": {"type": "boolean", "description": "the agent killed the script at its script_timeout"},
    "state": {"$ref": "#/components/schemas/HostState"}}},
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
    "error": {"type": "string"},
    "state": {"$ref": "#/components/schemas/HostState"}}},
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
    "rtt": {"type": "string"},
    "state": {"$ref": "#/components/schemas/HostState"}}},
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

// The schema object a `{"$ref": "#/components/schemas/X"}` (or an inline schema) stands for.
json::Value* resolve_schema(json::Document& doc, json::Value& schema) {
  if (!schema.IsObject()) return nullptr;
  auto ref = schema.FindMember("$ref");
  if (ref == schema.MemberEnd()) return &schema;
  if (!ref->value.IsString()) return nullptr;
  std::string_view r(ref->value.GetString(), ref->value.GetStringLength());
  constexpr std::string_view prefix = "#/components/schemas/";
  if (r.substr(0, prefix.size()) != prefix) return nullptr;
  std::string name(r.substr(prefix.size()));
  auto comps = doc.FindMember("components");
  if (comps == doc.MemberEnd() || !comps->value.IsObject()) return nullptr;
  auto schemas = comps->value.FindMember("schemas");
  if (schemas == comps->value.MemberEnd() || !schemas->value.IsObject()) return nullptr;
  auto it = schemas->value.FindMember(json::Value(StringRef(name.data(), name.size())));
  return it == schemas->value.MemberEnd() ? nullptr : &it->value;
}

// paths[path][method].requestBody.content["application/json"].schema, resolved.
json::Value* request_schema(json::Document& doc, std::string_view path, std::string_view method) {
  auto paths = doc.FindMember("paths");
  if (paths == doc.MemberEnd()) return nullptr;
  auto item = paths->value.FindMember(json::Value(StringRef(path.data(), path.size())));
  if (item == paths->value.MemberEnd()) return nullptr;
  auto op = item->value.FindMember(json::Value(StringRef(method.data(), method.size())));
  if (op == item->value.MemberEnd()) return nullptr;
  auto body = op->value.FindMember("requestBody");
  if (body == op->value.MemberEnd()) return nullptr;
  auto content = body->value.FindMember("content");
  if (content == body->value.MemberEnd()) return nullptr;
  auto js = content->value.FindMember("application/json");
  if (js == content->value.MemberEnd()) return nullptr;
  auto schema = js->value.FindMember("schema");
  if (schema == js->value.MemberEnd()) return nullptr;
  return resolve_schema(doc, schema->value);
}

// schema.properties[prop], or nullptr.
json::Value* property(json::Value& schema, const char* prop) {
  auto props = schema.FindMember("properties");
  if (props == schema.MemberEnd() || !props->value.IsObject()) return nullptr;
  auto it = props->value.FindMember(prop);
  return it == props->value.MemberEnd() ? nullptr : &it->value;
}

json::Value string_list(const std::vector<std::string>& items, Alloc& a) {
  json::Value arr(rapidjson::kArrayType);
  for (const auto& s : items)
    arr.PushBack(str_value(s, a), a);
  return arr;
}

void set_member(json::Value& obj, const char* key, json::Value v, Alloc& a) {
  obj.RemoveMember(key);
  obj.AddMember(json::Value(key, a), v, a);
}

} // namespace

const std::string& static_document() {
  static const std::string doc = build_static();
  return doc;
}

std::string live_document(const std::vector<std::string>& hosts,
                          const std::vector<const json::Value*>& capabilities, int64_t now) {
  json::Document doc = parse_builtin(static_document());
  auto& a = doc.GetAllocator();

  std::vector<std::string> names = hosts;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (std::string_view path : {"/ping", "/run", "/discovery"})
    for (std::string_view method : {"post", "get"}) {
      json::Value* schema = request_schema(doc, path, method);
      if (!schema) continue;
      json::Value* h = property(*schema, "hosts");
      if (!h || !h->IsObject()) continue;
      auto items = h->FindMember("items");
      if (items == h->MemberEnd()) {
        h->AddMember("items", json::Value(rapidjson::kObjectType), a);
        items = h->MemberEnd() - 1;
      }
      set_member(items->value, "enum",
                 names.empty() ? json::Value(rapidjson::kNullType) : string_list(names, a), a);
    }

  // script -> group ("\0none" first, then each schema_version) -> {hosts, schema}
  struct Group {
    std::set<std::string> hosts;
    std::optional<std::string> version;
    const json::Value* schema = nullptr;
  };
  std::map<std::string, std::map<std::string, Group>> scripts;
  for (const json::Value* r : capabilities) {
    if (!r || !r->IsObject()) continue;
    auto status = r->FindMember("status");
    if (status == r->MemberEnd() || !status->value.IsString() ||
        std::string_view(status->value.GetString()) != "ok")
      continue;
    auto host = r->FindMember("host");
    auto list = r->FindMember("scripts");
    if (host == r->MemberEnd() || !host->value.IsString() || list == r->MemberEnd() ||
        !list->value.IsArray())
      continue;
    for (const auto& s : list->value.GetArray()) {
      if (!s.IsObject()) continue;
      auto name = s.FindMember("name");
      if (name == s.MemberEnd() || !name->value.IsString()) continue;
      std::optional<std::string> version;
      if (auto v = s.FindMember("schema_version"); v != s.MemberEnd())
        if (auto text = json::scalar_string(v->value)) version = *text;
      std::string key = version ? *version : std::string("\0none", 5);
      Group& g = scripts[name->value.GetString()][key];
      g.version = version;
      g.hosts.insert(host->value.GetString());
      if (!g.schema)
        if (auto sc = s.FindMember("schema"); sc != s.MemberEnd() && !sc->value.IsNull())
          g.schema = &sc->value;
    }
  }
  if (!scripts.empty()) {
    std::vector<std::string> script_names;
    for (const auto& [n, _] : scripts)
      script_names.push_back(n);
    if (json::Value* run = request_schema(doc, "/run", "post"))
      if (json::Value* sp = property(*run, "script"); sp && sp->IsObject())
        set_member(*sp, "enum", string_list(script_names, a), a);
    json::Value ext(rapidjson::kObjectType);
    for (const auto& [n, groups] : scripts) {
      json::Value variants(rapidjson::kArrayType);
      for (const auto& [key, g] : groups) {
        json::Value v(rapidjson::kObjectType);
        v.AddMember("hosts", string_list({g.hosts.begin(), g.hosts.end()}, a), a);
        if (g.version) v.AddMember("schema_version", str_value(*g.version, a), a);
        if (g.schema) v.AddMember("schema", json::Value(*g.schema, a), a);
        variants.PushBack(v, a);
      }
      ext.AddMember(str_value(n, a), variants, a);
    }
    doc.AddMember("x-ctrl-exec-scripts", ext, a);
  }

  std::string base(version());
  if (size_t plus = base.rfind('+'); plus != std::string::npos && plus + 1 < base.size() &&
                                      is_digits(std::string_view(base).substr(plus + 1)))
    base.resize(plus);
  doc["info"]["version"] = str_value(base + "+" + std::to_string(now), a);
  return json::to_string(doc);
}

} // namespace cx::api
