// Tests for src/api/openapi.cpp: the static document against the route table.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "api/openapi.hpp"
#include "api/routes.hpp"
#include "base/strings.hpp"
#include "base/version.hpp"

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
