// Tests for src/api/openapi.cpp: the static document against the route table, and its component
// schemas (proto/wire_schemas.hpp) against real responses.
#include <catch2/catch.hpp>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "api/openapi.hpp"
#include "api/routes.hpp"
#include "base/strings.hpp"
#include "base/version.hpp"
#include "engine/result.hpp"
#include "proto/wire_schemas.hpp"
#include "json/writer.hpp"

using namespace cx;

namespace {
std::set<std::string> documented_operations(const json::Value& doc) {
  std::set<std::string> out;
  for (const auto& p : doc["paths"].GetObject())
    for (const auto& m : p.value.GetObject())
      out.insert(to_upper(m.name.GetString()) + " " + p.name.GetString());
  return out;
}
} // namespace

TEST_CASE("static OpenAPI document: exactly the served routes", "[api]") {
  auto doc = json::parse(api::static_document());
  REQUIRE(doc.ok());
  CHECK(std::string((*doc)["openapi"].GetString()) == "3.1.0");
  CHECK(std::string((*doc)["info"]["title"].GetString()) == "ctrl-exec API");
  CHECK(std::string((*doc)["info"]["version"].GetString()) == std::string(version()));
  std::set<std::string> served;
  for (const auto& r : api::routes())
    served.insert(std::string(r.method) + " " + std::string(r.path));
  CHECK(documented_operations(*doc) == served);
  // Every operation answers something, and every $ref points at a component that exists.
  std::function<void(const json::Value&)> check_refs = [&](const json::Value& v) {
    if (v.IsObject()) {
      for (const auto& m : v.GetObject()) {
        if (std::string(m.name.GetString()) == "$ref") {
          std::string ref = m.value.GetString();
          REQUIRE(ref.rfind("#/components/", 0) == 0);
          auto parts = split(ref.substr(2), '/');
          const json::Value* cur = &*doc;
          for (const auto& p : parts) {
            INFO(ref);
            REQUIRE(cur->HasMember(p.c_str()));
            cur = &(*cur)[p.c_str()];
          }
        } else {
          check_refs(m.value);
        }
      }
    } else if (v.IsArray()) {
      for (const auto& e : v.GetArray())
        check_refs(e);
    }
  };
  check_refs(*doc);
  // The component names clients of the original know.
  for (const char* name :
       {"HealthResponse", "PingRequest", "PingResult", "PingResponse", "RunRequest", "RunResult",
        "RunResponse", "AsyncSubmitResult", "AsyncSubmitResponse", "HostStatus", "StatusResponse",
        "DiscoveryRequest", "ScriptEntry", "HostCapabilities", "DiscoveryResponse",
        "ErrorResponse"}) {
    INFO(name);
    CHECK((*doc)["components"]["schemas"].HasMember(name));
  }
  for (const char* name : {"BadRequest", "Forbidden", "Conflict", "NotFound", "DiscoverySuccess"})
    CHECK((*doc)["components"]["responses"].HasMember(name));
  // Built once: the same bytes every time.
  CHECK(&api::static_document() == &api::static_document());
}

TEST_CASE("the component schemas accept the API's real responses", "[api]") {
  // Bodies from the original's transcripts (dispatcher-and-api transcripts 14-16) and ours; the
  // API passes agent members through, so the original's bodies must fit too.
  struct Row {
    const char* component;
    const char* body;
    const char* error; // "" when valid
  };
  const Row rows[] = {
      {"HealthResponse", R"({"ok":true,"version":"0.12.3"})", ""},
      {"IndexResponse",
       R"({"endpoints":[{"path":"/health","method":"GET"},{"method":"POST","path":"/run"}],)"
       R"("live_spec":"/openapi-live.json","name":"ctrl-exec-api","version":"0.12.3",)"
       R"("spec":"/openapi.json"})",
       ""},
      {"PingResponse",
       R"({"results":[{"version":"0.12.3","host":"vm","staged":false,"status":"ok","rtt":"72ms",)"
       R"("reqid":"566ee5b46275cc14","expiry":"Feb 27 04:17:27 2029 GMT"}],"ok":true})",
       ""},
      {"PingResponse",
       R"({"ok":true,"results":[{"status":"error","error":"host 'x' did not respond on port )"
       R"j(7443 - connection refused (agent not running, or wrong port?)","rtt":"0ms",)j"
       R"("host":"x","state":"unreachable"}]})",
       ""},
      {"DiscoveryResponse",
       R"({"ok":true,"hosts":{"vm":{"version":"0.12.3","host":"vm","status":"ok","rtt":"47ms",)"
       R"("tags":{},"scripts":[{"profile":"default","executable":true,"name":"check-disk",)"
       R"("path":"/opt/ctrl-exec-scripts/check-disk.sh"}]}}})",
       ""},
      {"DiscoveryResponse", R"({"ok":true,"hosts":{}})", ""},
      {"RunResponse",
       R"({"ok":true,"reqid":"2db693e2edfcaee9","results":[{"script":"echo-args","rtt":"36ms",)"
       R"("exit":0,"host":"vm","stdout":"argc=2\n","stderr":"this goes to stderr\n",)"
       R"("reqid":"2db693e2edfcaee9"}]})",
       ""},
      {"RunResponse",
       R"({"ok":true,"results":[{"reqid":"a1b166b8f5739d16","error":"script not permitted",)"
       R"("script":"not-allowlisted","rtt":"35ms","host":"vm","exit":-1,"state":"error"}],)"
       R"("reqid":"a1b166b8f5739d16"})",
       ""},
      {"AsyncSubmitResponse",
       R"({"ok":true,"async":true,"reqid":"7bc0c09a36912e82","results":[{"status":"accepted",)"
       R"("script":"noop","rtt":"39ms","reqid":"7bc0c09a36912e82","host":"vm"}]})",
       ""},
      // An agent with an executor refuses async runs as a sync run would answer: no status.
      {"AsyncSubmitResponse",
       R"({"ok":true,"reqid":"r","async":true,"results":[{"script":"noop","exit":-1,)"
       R"("reqid":"r","error":"async runs are not yet supported with the executor",)"
       R"("rtt":"3ms","host":"vm","state":"error"}]})",
       ""},
      {"StatusResponse",
       R"({"hosts":["vm"],"mode":"sync","reqid":"f6e8e26c4c8de189","complete":true,)"
       R"("script":"echo-args","completed":1795580504,"ok":true,"results":[{"stdout":"x\n",)"
       R"("reqid":"f6e8e26c4c8de189","stderr":"","script":"echo-args","rtt":"37ms",)"
       R"("host":"vm","exit":0}]})",
       ""},
      {"StatusResponse",
       R"({"complete":true,"ok":true,"created":1795580511,"script":"echo-args",)"
       R"("reqid":"ad0cde9324b26837","pending":[],"hosts":{"vm":{"stderr":"e\n","exit":0,)"
       R"("status":"done","stdout":"o\n","truncated":true}},"mode":"async"})",
       ""},
      {"ErrorResponse",
       R"({"error":"unknown agent","detail":"not a registered agent: nosuch","ok":false})", ""},
      {"ErrorResponse", R"({"conflicts":["vm:noop"],"error":"locked","code":4,"ok":false})", ""},
      {"ErrorResponse", R"({"ok":false,"error":"hook exited 99","code":99})", ""},
      {"ErrorResponse", R"({"ok":false,"error":"forbidden"})", ""},
      // What the schemas refuse.
      {"HealthResponse", R"({"ok":false,"version":"0.12.3"})", "body.ok: expected true, got false"},
      {"ErrorResponse", R"({"ok":false})", "body: missing required member 'error'"},
      {"PingResponse", R"({"ok":true,"results":[{"host":"vm","status":"ok","state":"asleep"}]})",
       R"(body.results[0].state: "asleep" is not one of ok, error, timeout, unreachable, busy, )"
       R"(denied, skipped)"},
      {"RunResponse", R"({"ok":true,"reqid":"r","results":[{"host":"vm"}]})",
       "body.results[0]: missing required member 'exit'"},
      {"StatusResponse",
       R"({"ok":true,"reqid":"r","script":"s","mode":"async","complete":false,"hosts":"vm"})",
       "body.hosts: matches 0 of the 2 alternatives of oneOf"},
      {"StatusResponse",
       R"({"ok":true,"reqid":"r","script":"s","mode":"async","complete":false,)"
       R"("hosts":{"vm":{"status":"gone"}}})",
       "body.hosts: matches 0 of the 2 alternatives of oneOf"},
      {"DiscoveryResponse", R"({"ok":true,"hosts":{"vm":{"host":"vm","status":"ok","tags":[]}}})",
       R"(body.hosts["vm"].tags: expected object, got array)"},
  };
  for (const auto& r : rows) {
    INFO(r.component << " " << r.body);
    const proto::Definition* def = proto::find_api_body(r.component);
    REQUIRE(def);
    auto body = json::parse(r.body);
    REQUIRE(body.ok());
    CHECK(proto::validate(def->schema, *body).message() == r.error);
  }
}

TEST_CASE("HostState lists every per-host state the engine writes", "[api]") {
  const proto::Definition* def = proto::find_api_body("HostState");
  REQUIRE(def);
  std::vector<std::string> names;
  for (auto s : {engine::HostState::ok, engine::HostState::error, engine::HostState::timeout,
                 engine::HostState::unreachable, engine::HostState::busy, engine::HostState::denied,
                 engine::HostState::skipped})
    names.emplace_back(engine::state_name(s));
  CHECK(def->schema.enum_values() == names);
}

TEST_CASE("the document's components are the API's body descriptions", "[api]") {
  auto doc = json::parse(api::static_document());
  REQUIRE(doc.ok());
  const json::Value& schemas = (*doc)["components"]["schemas"];
  std::vector<std::string> documented;
  for (const auto& m : schemas.GetObject())
    documented.emplace_back(m.name.GetString());
  std::vector<std::string> described;
  for (const proto::Definition* d : proto::api_bodies()) {
    described.emplace_back(d->name);
    json::Writer w;
    proto::write_openapi(w, d->schema);
    INFO(d->name);
    CHECK(json::to_string(schemas[std::string(d->name).c_str()]) == w.str());
  }
  CHECK(documented == described);
}
