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
#include "proto/wire_schemas.hpp"
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

// The shared responses of components.responses: a description and the body's component.
struct SharedResponse {
  std::string_view name, description;
  std::string_view body = "ErrorResponse";
};
constexpr SharedResponse kResponses[] = {
    {"BadRequest", "The request is malformed."},
    {"Forbidden",
     "The auth hook (or api_auth_default) refused the request. With auth_deny_generic on, the "
     "body is only {\"ok\":false,\"error\":\"forbidden\"}."},
    {"NotFound", "No such route, no such agent, or no result for this request id."},
    {"Conflict", "A host+script pair is locked by another dispatch."},
    {"KeyReused", "This Idempotency-Key was used by the same submitter for a different request."},
    {"ServerError", "The server could not read what it needed."},
    {"ServiceUnavailable", "More than api_max_children requests are in progress, or (ours) the "
                           "shared state store (state_backend = etcd) cannot be reached."},
    {"DiscoverySuccess", "The capabilities of each agent, keyed by registry name.",
     "DiscoveryResponse"},
};

// components: the schemas rendered from the API's body descriptions (proto/wire_schemas.hpp),
// which the tests also validate real responses against, and the shared responses.
std::string components_text() {
  json::Writer w;
  w.begin_object().key("schemas").begin_object();
  for (const proto::Definition* d : proto::api_bodies()) {
    w.key(d->name);
    proto::write_openapi(w, d->schema);
  }
  w.end_object().key("responses").begin_object();
  for (const SharedResponse& r : kResponses) {
    const proto::Definition* body = proto::find_api_body(r.body);
    CX_CHECK(body);
    w.key(r.name).begin_object().member("description", r.description).key("content");
    w.begin_object().key("application/json").begin_object().key("schema");
    proto::write_openapi(w, proto::Schema::ref(*body));
    w.end_object().end_object().end_object();
  }
  w.end_object().end_object();
  return w.str();
}

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
  json::Document components = parse_builtin(components_text());
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
