// Tests for src/conf/dispatcher.cpp: every ctrl-exec.conf key, its default and its rule.
#include <catch2/catch.hpp>

#include "base/paths.hpp"
#include "conf/dispatcher.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

TEST_CASE("dispatcher defaults", "[conf]") {
  auto load = make_dispatcher_config({}, "vm");
  const DispatcherConfig& c = load.config;
  CHECK(load.warnings.empty());
  CHECK(c.cert.empty());
  CHECK(c.dispatcher_id == "vm");
  CHECK_FALSE(c.auth_hook);
  CHECK(c.auth_hook_timeout == 10);
  CHECK_FALSE(c.api_auth_allow);
  CHECK_FALSE(c.auth_deny_generic);
  CHECK(c.api_port == 7445);
  CHECK(c.api_bind == "127.0.0.1");
  CHECK_FALSE(c.api_cert);
  CHECK_FALSE(c.api_key);
  CHECK(c.api_max_children == 64);
  CHECK(c.read_timeout == 60);
  CHECK(c.max_parallel == 64);
  CHECK_FALSE(c.cert_days);
  CHECK(c.renewal_cert_days() == 365);
  CHECK(c.rotation_cert_days() == 825);
  CHECK(c.cert_renewal_days == 90);
  CHECK(c.cert_overlap_days == 30);
  CHECK(c.cert_check_interval == 14400);
  CHECK(c.ca_dir == paths::dispatcher_etc());
  CHECK(c.service_user == "ctrl-exec");
  CHECK(c.pairing_timeout == 600);
  CHECK(c.pairing_max_queue == 10);
  CHECK(c.pairing_rate_limit == RateLimit{10, 60, 300});
  CHECK_FALSE(c.pairing_rate_limit_disable);
  CHECK(c.rotation_file == paths::rotation_file());
  CHECK(c.registry_dir == paths::registry_dir());
}

TEST_CASE("dispatcher keys override defaults", "[conf]") {
  FlatConfig conf = {{"cert", "/c"},
                     {"key", "/k"},
                     {"ca", "/a"},
                     {"dispatcher_id", "dc1"},
                     {"auth_hook", "/etc/ctrl-exec/auth-hook"},
                     {"auth_hook_timeout", "0"},
                     {"api_port", "8445"},
                     {"api_bind", "0.0.0.0"},
                     {"api_cert", "/ac"},
                     {"api_key", "/ak"},
                     {"api_max_children", "8"},
                     {"read_timeout", "30"},
                     {"timeout", "99"},
                     {"max_parallel", "4"},
                     {"cert_days", "100"},
                     {"cert_renewal_days", "10"},
                     {"cert_overlap_days", "5"},
                     {"cert_check_interval", "60"},
                     {"ca_dir", "/ca"},
                     {"service_user", "svc"},
                     {"pairing_timeout", "30"},
                     {"pairing_max_queue", "3"},
                     {"pairing_rate_limit_volume", "5/10/20"},
                     {"rotation_file", "/r.json"},
                     {"registry_dir", "/reg"},
                     {"port", "ignored"}};
  auto load = make_dispatcher_config(conf, "vm");
  const DispatcherConfig& c = load.config;
  CHECK(load.warnings.empty());
  CHECK(c.cert == "/c");
  CHECK(c.key == "/k");
  CHECK(c.ca == "/a");
  CHECK(c.dispatcher_id == "dc1");
  CHECK(c.auth_hook == "/etc/ctrl-exec/auth-hook");
  CHECK(c.auth_hook_timeout == 0);
  CHECK(c.api_port == 8445);
  CHECK(c.api_bind == "0.0.0.0");
  CHECK(c.api_cert == "/ac");
  CHECK(c.api_key == "/ak");
  CHECK(c.api_max_children == 8);
  CHECK(c.read_timeout == 30); // read_timeout wins over the deprecated alias
  CHECK(c.max_parallel == 4);
  CHECK(c.cert_days == 100);
  CHECK(c.renewal_cert_days() == 100);
  CHECK(c.rotation_cert_days() == 100);
  CHECK(c.cert_renewal_days == 10);
  CHECK(c.cert_overlap_days == 5);
  CHECK(c.cert_check_interval == 60);
  CHECK(c.ca_dir == "/ca");
  CHECK(c.service_user == "svc");
  CHECK(c.pairing_timeout == 30);
  CHECK(c.pairing_max_queue == 3);
  CHECK(c.pairing_rate_limit == RateLimit{5, 10, 20});
  CHECK(c.rotation_file == "/r.json");
  CHECK(c.registry_dir == "/reg");
  CHECK(c.raw.at("port") == "ignored"); // unknown keys are kept
}

TEST_CASE("dispatcher boolean rules, per key", "[conf]") {
  struct Row {
    const char* key;
    const char* value;
    bool on;
  };
  const Row rows[] = {
      {"api_auth_default", "allow", true},
      {"api_auth_default", "ALLOW", true},
      {"api_auth_default", "Allow", true},
      {"api_auth_default", "deny", false},
      {"api_auth_default", "allowed", false},
      {"api_auth_default", "yes", false},
      {"auth_deny_generic", "1", true},
      {"auth_deny_generic", "yes", true},
      {"auth_deny_generic", "Y", true},
      {"auth_deny_generic", "10", true},
      {"auth_deny_generic", "0", false},
      {"auth_deny_generic", "no", false},
      {"auth_deny_generic", "true", false},
      {"auth_deny_generic", "on", false},
      {"pairing_rate_limit_disable", "1", true},
      {"pairing_rate_limit_disable", "y", true},
      {"pairing_rate_limit_disable", "Yes", true},
      {"pairing_rate_limit_disable", "true", false},
      {"pairing_rate_limit_disable", "0", false},
  };
  for (const auto& r : rows) {
    INFO(r.key << " = " << r.value);
    auto c = make_dispatcher_config({{r.key, r.value}}, "vm").config;
    bool got = std::string(r.key) == "api_auth_default"    ? c.api_auth_allow
               : std::string(r.key) == "auth_deny_generic" ? c.auth_deny_generic
                                                           : c.pairing_rate_limit_disable;
    CHECK(got == r.on);
  }
  // `^\s*[1y]`: only auth_deny_generic allows leading space (reachable through the parser's
  // single-whitespace quirk, or a map built by hand).
  CHECK(make_dispatcher_config({{"auth_deny_generic", " y"}}, "vm").config.auth_deny_generic);
  CHECK_FALSE(make_dispatcher_config({{"pairing_rate_limit_disable", " y"}}, "vm")
                  .config.pairing_rate_limit_disable);
}

TEST_CASE("dispatcher numbers: special rules and invalid values", "[conf]") {
  struct Row {
    FlatConfig conf;
    int64_t read_timeout, max_parallel;
    std::vector<ConfigWarning> warnings;
  };
  const Row rows[] = {
      {{{"timeout", "15"}}, 15, 64, {}}, // alias when read_timeout absent
      {{{"read_timeout", "junk"}, {"timeout", "15"}},
       60,
       64, // `//`: present read_timeout wins
       {{"read_timeout", "invalid value 'junk' (expected an integer >= 1); using 60"}}},
      {{{"max_parallel", "0"}}, 60, 1, {}}, // < 1 becomes 1
      {{{"max_parallel", "-5"}}, 60, 1, {}},
      {{{"max_parallel", "lots"}},
       60,
       64,
       {{"max_parallel", "invalid value 'lots' (expected an integer); using 64"}}},
      {{{"read_timeout", "+20"}}, 20, 64, {}},
  };
  for (const auto& r : rows) {
    auto load = make_dispatcher_config(r.conf, "vm");
    CHECK(load.config.read_timeout == r.read_timeout);
    CHECK(load.config.max_parallel == r.max_parallel);
    CHECK(load.warnings == r.warnings);
  }

  auto bad = make_dispatcher_config({{"api_port", "70000"},
                                     {"auth_hook_timeout", "-1"},
                                     {"cert_days", "0"},
                                     {"pairing_timeout", "10m"},
                                     {"pairing_rate_limit_volume", "fast"}},
                                    "vm");
  CHECK(bad.config.api_port == 7445);
  CHECK(bad.config.auth_hook_timeout == 10);
  CHECK_FALSE(bad.config.cert_days);
  CHECK(bad.config.pairing_timeout == 600);
  CHECK(bad.config.pairing_rate_limit == RateLimit{10, 60, 300}); // silently
  CHECK(bad.warnings ==
        std::vector<ConfigWarning>{
            {"auth_hook_timeout", "invalid value '-1' (expected an integer >= 0); using 10"},
            {"api_port", "invalid value '70000' (expected an integer from 1 to 65535); using 7445"},
            {"cert_days", "invalid value '0' (expected an integer >= 1); using the default"},
            {"pairing_timeout", "invalid value '10m' (expected an integer); using 600"},
        });
}

TEST_CASE("dispatcher_id sanitisation", "[conf]") {
  struct Row {
    std::string in, out;
  };
  const Row rows[] = {
      {"dispatcher-01.example.com", "dispatcher-01.example.com"},
      {"my host!", "my-host-"},
      {"--lead", "lead"},
      {"..._x", "x"},
      {"-._", "dispatcher"},
      {"", "dispatcher"},
      {"caf\xC3\xA9", "caf--"}, // byte-wise
      {std::string(70, 'a'), std::string(64, 'a')},
      {"-" + std::string(70, 'b'), std::string(64, 'b')}, // strip first, then cut
  };
  for (const auto& r : rows) {
    INFO(r.in);
    CHECK(sanitize_dispatcher_id(r.in) == r.out);
    // The same rule applies to the configured value and to the hostname default.
    CHECK(make_dispatcher_config({{"dispatcher_id", r.in}}, "vm").config.dispatcher_id == r.out);
    CHECK(make_dispatcher_config({}, r.in).config.dispatcher_id == r.out);
  }
}

TEST_CASE("load_dispatcher_config from a file", "[conf]") {
  test::TempDir dir;
  std::string path =
      conf_test::write(dir, "ctrl-exec.conf",
                       "# dispatcher\ncert = /etc/ctrl-exec/dispatcher.crt\n"
                       "key = /etc/ctrl-exec/dispatcher.key\n"
                       "ca = /etc/ctrl-exec/ca.crt\n  api_port = 1\napi_port = 9000\n");
  auto load = load_dispatcher_config(path, "vm");
  REQUIRE(load.ok());
  CHECK(load->config.path == path);
  CHECK(load->config.api_port == 9000);
  CHECK(load->config.ca == "/etc/ctrl-exec/ca.crt");

  std::string partial = conf_test::write(dir, "partial.conf", "api_port = 9001\n");
  auto strict = load_dispatcher_config(partial, "vm");
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.message() == "Missing 'cert' in " + partial);
  auto lenient = load_dispatcher_config(partial, "vm", true);
  REQUIRE(lenient.ok());
  CHECK(lenient->config.api_port == 9001);
}
