// Tests for src/conf/sidecar.cpp: schema sidecars, their skip reasons and schema_version.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "conf/sidecar.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

TEST_CASE("schema_version: explicit or derived", "[conf]") {
  // Derived values were checked with Perl: substr(sha256_hex(canonical JSON), 0, 12).
  struct Row {
    const char* body;
    const char* version;
    const char* derive_reason; // nullptr = none
  };
  const Row rows[] = {
      {R"({"type":"object","properties":{"name":{"type":"string"}}})", "sha256:2b7196d853ba",
       nullptr},
      {R"({"properties":{"name":{"type":"string"}},"type":"object"})", "sha256:2b7196d853ba",
       nullptr}, // key order does not matter
      {R"({"version":"1.2.0","type":"object"})", "1.2.0", nullptr},
      {R"({"version":"v2_beta-1"})", "v2_beta-1", nullptr},
      {R"({"version":2})", "2", nullptr},
      {R"({"version":1.50})", "1.5", nullptr},
      {R"({"version":null})", "sha256:4a9fc0ddd1fa", nullptr},
      {R"({"type":"object","version":"bad version"})", "sha256:441501150cf9",
       "invalid version 'bad version'"},
      {R"({"version":"sha256:abc"})", "sha256:895101f79edd", "invalid version 'sha256:abc'"},
      {R"({"version":{"x":1}})", "sha256:b52a3306d482", "version is not a scalar"},
      {R"({"version":1e20})", "sha256:9dadca4a0df4", "invalid version '1e+20'"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto doc = json::parse(r.body);
    REQUIRE(doc.ok());
    std::optional<std::string> reason;
    CHECK(schema_version(*doc, &reason) == r.version);
    if (r.derive_reason) {
      REQUIRE(reason);
      CHECK(*reason == r.derive_reason);
    } else {
      CHECK_FALSE(reason);
    }
  }
  auto long_version = json::parse("{\"version\":\"" + std::string(65, 'a') + "\"}");
  REQUIRE(long_version.ok());
  CHECK(schema_version(*long_version, nullptr).substr(0, 7) == "sha256:");
  auto max_version = json::parse("{\"version\":\"" + std::string(64, 'a') + "\"}");
  CHECK(schema_version(*max_version, nullptr) == std::string(64, 'a'));
}

TEST_CASE("sidecar files: usable, absent or skipped with a reason", "[conf]") {
  test::TempDir dir;
  struct Row {
    const char* name;
    std::optional<std::string> content; // nullopt = no sidecar file
    std::string schema_json;            // "" = no sidecar expected
    std::string skip_reason;
  };
  const Row rows[] = {
      {"plain", std::nullopt, "", ""},
      {"good", std::string(R"({ "type": "object", "version": "3" })"),
       R"({"type":"object","version":"3"})", ""},
      {"array", std::string("[1,2]"), "", "not a JSON object"},
      {"junk", std::string("{not json"), "",
       "invalid JSON: Missing a name for object member. at offset 1"},
      {"empty", std::string(""), "", "invalid JSON: The document is empty. at offset 0"},
      {"limit", "{\"d\":\"" + std::string(kMaxSidecarBytes - 8, 'x') + "\"}",
       "{\"d\":\"" + std::string(kMaxSidecarBytes - 8, 'x') + "\"}", ""},
      {"big", "{\"d\":\"" + std::string(kMaxSidecarBytes - 7, 'x') + "\"}", "",
       "too large (65537 bytes, limit 65536)"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    std::string script = conf_test::write(dir, r.name, "#!/bin/sh\n", 0755);
    if (r.content) conf_test::write(dir, std::string(r.name) + ".schema.json", *r.content);
    SidecarLoad load = load_sidecar(script);
    if (r.schema_json.empty()) {
      CHECK_FALSE(load.sidecar);
    } else {
      REQUIRE(load.sidecar);
      CHECK(load.sidecar->schema_json == r.schema_json);
    }
    CHECK(load.skip_reason.value_or("") == r.skip_reason);
  }

  // A directory in place of the sidecar, and (when not root) a file we may not read.
  std::string d = conf_test::write(dir, "dirside", "#!/bin/sh\n", 0755);
  REQUIRE(make_dirs(d + ".schema.json").ok());
  CHECK(load_sidecar(d).skip_reason == "unreadable: not a regular file");
  if (::geteuid() != 0) {
    std::string s = conf_test::write(dir, "secret", "#!/bin/sh\n", 0755);
    std::string side = conf_test::write(dir, "secret.schema.json", "{}", 0000);
    auto load = load_sidecar(s);
    REQUIRE(load.skip_reason);
    CHECK(*load.skip_reason == "unreadable: cannot read '" + side + "': Permission denied");
  }
}

TEST_CASE("load_sidecars reports events by script name", "[conf]") {
  test::TempDir dir;
  std::string a = conf_test::write(dir, "a.sh", "", 0755);
  std::string b = conf_test::write(dir, "b.sh", "", 0755);
  std::string c = conf_test::write(dir, "c.sh", "", 0755);
  conf_test::write(dir, "a.sh.schema.json", R"({"version":"1"})");
  conf_test::write(dir, "b.sh.schema.json", "nope");
  conf_test::write(dir, "c.sh.schema.json", R"({"version":"not ok"})");
  Allowlist list = {{"alpha", {a, "default"}},
                    {"beta", {b, "default"}},
                    {"gamma", {c, "default"}},
                    {"delta", {dir / "none.sh", "default"}}};
  SidecarSet set = load_sidecars(list);
  REQUIRE(set.by_script.size() == 2);
  CHECK(set.by_script.at("alpha").schema_version == "1");
  CHECK(set.by_script.at("gamma").schema_version.substr(0, 7) == "sha256:");
  REQUIRE(set.events.size() == 2);
  CHECK(set.events[0].action == "schema-skip");
  CHECK(set.events[0].script == "beta");
  CHECK(set.events[0].reason == "invalid JSON: Invalid value. at offset 1");
  CHECK(set.events[1].action == "schema-version-derive");
  CHECK(set.events[1].script == "gamma");
  CHECK(set.events[1].reason == "invalid version 'not ok'");
}
