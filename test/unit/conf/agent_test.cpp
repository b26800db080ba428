// Tests for src/conf/agent.cpp: agent.conf keys, defaults, warnings and profile validation.
#include <catch2/catch.hpp>

#include "base/paths.hpp"
#include "base/strings.hpp"
#include "conf/agent.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

namespace {
const std::string kRequired = "port = 7443\ncert = /c\nkey = /k\nca = /a\n";

Result<AgentConfigLoad> from_text(const std::string& text) {
  auto ini = parse_sectioned(text, "/agent.conf");
  if (!ini.ok()) return ini.status();
  return make_agent_config(*ini, "/agent.conf");
}
} // namespace

TEST_CASE("agent defaults", "[conf]") {
  auto load = from_text(kRequired);
  REQUIRE(load.ok());
  const AgentConfig& c = load->config;
  CHECK(load->warnings.empty());
  CHECK(c.path == "/agent.conf");
  CHECK(c.port == 7443);
  CHECK(c.cert == "/c");
  CHECK(c.key == "/k");
  CHECK(c.ca == "/a");
  CHECK(c.trusted_dispatchers_path == paths::agent_trusted_map());
  CHECK(c.revoked_serials == paths::agent_revoked());
  CHECK(c.cert_staging_path == paths::agent_staged_cert());
  CHECK(c.async_runs_dir == paths::agent_runs());
  CHECK(c.script_dirs.empty());
  CHECK_FALSE(c.executor_socket);
  CHECK(c.stdin_timeout == 10);
  CHECK_FALSE(c.auth_hook);
  CHECK(c.auth_hook_timeout == 10);
  CHECK_FALSE(c.allowed_ips);
  CHECK_FALSE(c.metrics_bind_ip);
  CHECK_FALSE(c.rate_limit_disable);
  CHECK(c.rate_limit_volume == RateLimit{10, 60, 300});
  CHECK(c.rate_limit_probe == RateLimit{3, 600, 3600});
  CHECK(c.max_children == 256);
  CHECK(c.script_timeout == 0);
  CHECK(c.script_output_limit == 0);
  CHECK(c.tags.empty());
  CHECK(c.profiles.empty());
}

TEST_CASE("agent keys override defaults", "[conf]") {
  auto load =
      from_text(kRequired + "trusted_dispatchers_path = /t\nrevoked_serials = /r\n"
                            "cert_staging_path = /s\nasync_runs_dir = /runs\n"
                            "script_dirs = /opt/a::/opt/b:\nexecutor_socket = /run/x.sock\n"
                            "stdin_timeout = 3\nauth_hook_timeout = 4\n"
                            "allowed_ips = 10.0.0.0/8, 192.168.1.5\nrate_limit_disable = yes\n"
                            "rate_limit_volume = 100/10/60\nrate_limit_probe = 5/60/600\n"
                            "max_children = 8\nscript_timeout = 30\nscript_output_limit = 1048576\n"
                            "pairing_port = 7444\n"
                            "[tags]\nenv = prod\nrole = db\n");
  REQUIRE(load.ok());
  const AgentConfig& c = load->config;
  CHECK(load->warnings.empty());
  CHECK(c.trusted_dispatchers_path == "/t");
  CHECK(c.revoked_serials == "/r");
  CHECK(c.cert_staging_path == "/s");
  CHECK(c.async_runs_dir == "/runs");
  CHECK(c.script_dirs == std::vector<std::string>{"/opt/a", "/opt/b"});
  CHECK(c.executor_socket == "/run/x.sock");
  CHECK(c.stdin_timeout == 3);
  CHECK(c.auth_hook_timeout == 4);
  CHECK(c.allowed_ips == "10.0.0.0/8, 192.168.1.5");
  CHECK(c.rate_limit_disable);
  CHECK(c.rate_limit_volume == RateLimit{100, 10, 60});
  CHECK(c.rate_limit_probe == RateLimit{5, 60, 600});
  CHECK(c.max_children == 8);
  CHECK(c.script_timeout == 30);
  CHECK(c.script_output_limit == 1048576u);
  CHECK(c.tags == std::map<std::string, std::string>{{"env", "prod"}, {"role", "db"}});
}

TEST_CASE("agent required keys and port", "[conf]") {
  struct Row {
    std::string text;
    std::string err;
  };
  const Row rows[] = {
      {"cert=/c\nkey=/k\nca=/a\n", "Missing required config key 'port'"},
      {"port=1\nkey=/k\nca=/a\n", "Missing required config key 'cert'"},
      {"port=1\ncert=/c\nca=/a\n", "Missing required config key 'key'"},
      {"port=1\ncert=/c\nkey=/k\n", "Missing required config key 'ca'"},
      {"[tags]\nport=1\ncert=/c\nkey=/k\nca=/a\n", "Missing required config key 'port'"},
      {"port=74x3\ncert=/c\nkey=/k\nca=/a\n", "Config key 'port' must be a number, got '74x3'"},
      {"port=-1\ncert=/c\nkey=/k\nca=/a\n", "Config key 'port' must be a number, got '-1'"},
      {"port=+7443\ncert=/c\nkey=/k\nca=/a\n", "Config key 'port' must be a number, got '+7443'"},
      {"port=65536\ncert=/c\nkey=/k\nca=/a\n",
       "Config key 'port' must be at most 65535, got '65536'"},
      {"port=0\ncert=/c\nkey=/k\nca=/a\n", ""}, // port 0: an ephemeral port, for tests
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto load = from_text(r.text);
    CHECK(load.message() == r.err);
  }
}

TEST_CASE("agent rate limits and numbers: warnings keep defaults", "[conf]") {
  struct Row {
    std::string extra;
    bool disable;
    RateLimit volume, probe;
    std::vector<ConfigWarning> warnings;
  };
  const Row rows[] = {
      {"rate_limit_disable = 1\n", true, {10, 60, 300}, {3, 600, 3600}, {}},
      {"rate_limit_disable = Y\n", true, {10, 60, 300}, {3, 600, 3600}, {}},
      {"rate_limit_disable = yes please\n", true, {10, 60, 300}, {3, 600, 3600}, {}},
      {"rate_limit_disable = 0\n", false, {10, 60, 300}, {3, 600, 3600}, {}},
      {"rate_limit_disable = true\n", false, {10, 60, 300}, {3, 600, 3600}, {}},
      {"rate_limit_volume = 10/60\n",
       false,
       {10, 60, 300},
       {3, 600, 3600},
       {{"rate_limit_volume",
         "malformed value '10/60' (expected limit/window/block); using 10/60/300"}}},
      {"rate_limit_probe = x/y/z\n",
       false,
       {10, 60, 300},
       {3, 600, 3600},
       {{"rate_limit_probe",
         "malformed value 'x/y/z' (expected limit/window/block); using 3/600/3600"}}},
      {"max_children = 0\nstdin_timeout = soon\n",
       false,
       {10, 60, 300},
       {3, 600, 3600},
       {{"stdin_timeout", "invalid value 'soon' (expected an integer >= 0); using 10"},
        {"max_children", "invalid value '0' (expected an integer >= 1); using 256"}}},
      {"script_output_limit = -1\n",
       false,
       {10, 60, 300},
       {3, 600, 3600},
       {{"script_output_limit", "invalid value '-1' (expected an integer >= 0); using 0"}}},
  };
  for (const auto& r : rows) {
    INFO(r.extra);
    auto load = from_text(kRequired + r.extra);
    REQUIRE(load.ok());
    CHECK(load->config.rate_limit_disable == r.disable);
    CHECK(load->config.rate_limit_volume == r.volume);
    CHECK(load->config.rate_limit_probe == r.probe);
    CHECK(load->warnings == r.warnings);
  }
}

TEST_CASE("profile fields: parsing and validation", "[conf]") {
  struct Row {
    KeyValues fields;
    Profile expected;
    std::string err; // "" = ok
  };
  const Row rows[] = {
      {{}, {}, ""},
      {{{"run_as", "nobody"}}, {"nobody", {}, {}, true}, ""},
      {{{"run_as", "_svc-1"}}, {"_svc-1", {}, {}, true}, ""},
      {{{"run_as", "65534"}}, {"65534", {}, {}, true}, ""},
      {{{"run_as", "4294967295"}}, {"4294967295", {}, {}, true}, ""},
      {{{"run_as", " "}}, {}, ""}, // blank = unset
      {{{"run_as", "4294967296"}}, {}, "Profile 'p': run_as uid '4294967296' is out of range"},
      {{{"run_as", "1user"}},
       {},
       "Profile 'p': invalid run_as '1user' (expected a user name or a numeric uid)"},
      {{{"run_as", "us er"}},
       {},
       "Profile 'p': invalid run_as 'us er' (expected a user name or a numeric uid)"},
      {{{"caps", "CAP_NET_BIND_SERVICE, CAP_CHOWN,,CAP_DAC_OVERRIDE"}},
       {std::nullopt, {"CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_DAC_OVERRIDE"}, {}, true},
       ""},
      {{{"caps", " ,CAP_SYS_TIME\tCAP_KILL"}},
       {std::nullopt, {"CAP_SYS_TIME", "CAP_KILL"}, {}, true},
       ""},
      {{{"caps", "cap_chown"}},
       {},
       "Profile 'p': invalid caps entry 'cap_chown' (expected CAP_NAME)"},
      {{{"caps", "CAP_"}}, {}, "Profile 'p': invalid caps entry 'CAP_' (expected CAP_NAME)"},
      {{{"caps", "CAP_CHOWN # keep chown"}},
       {},
       "Profile 'p': invalid caps entry '#' (expected CAP_NAME); comments must be on their own "
       "line, not after a value"},
      {{{"writable", "/var/lib/app:/tmp/x"}},
       {std::nullopt, {}, {"/var/lib/app", "/tmp/x"}, true},
       ""},
      {{{"writable", "/a:"}}, {std::nullopt, {}, {"/a"}, true}, ""}, // trailing empty dropped
      {{{"writable", "/a::/b"}}, {}, "Profile 'p': writable path '' must be absolute"},
      {{{"writable", "rel/dir"}}, {}, "Profile 'p': writable path 'rel/dir' must be absolute"},
      {{{"no_new_privileges", "0"}}, {std::nullopt, {}, {}, false}, ""},
      {{{"no_new_privileges", "no"}}, {std::nullopt, {}, {}, false}, ""},
      {{{"no_new_privileges", "maybe"}}, {std::nullopt, {}, {}, false}, ""},
      {{{"no_new_privileges", "YES"}}, {std::nullopt, {}, {}, true}, ""},
      {{{"no_new_privileges", "On"}}, {std::nullopt, {}, {}, true}, ""},
      {{{"no_new_privileges", "true"}}, {std::nullopt, {}, {}, true}, ""},
      {{{"sandbox", "strict"}}, {}, ""}, // other keys ignored
  };
  for (const auto& r : rows) {
    auto p = parse_profile("p", r.fields);
    if (r.err.empty()) {
      REQUIRE(p.ok());
      CHECK(*p == r.expected);
    } else {
      CHECK(p.message() == r.err);
    }
  }
}

TEST_CASE("agent profiles come from [profile] sections", "[conf]") {
  auto load =
      from_text(kRequired + "[profile default]\nrun_as = nobody\n"
                            "[profile web]\ncaps = CAP_NET_BIND_SERVICE\nno_new_privileges = off\n"
                            "[profile empty]\n");
  REQUIRE(load.ok());
  const auto& profiles = load->config.profiles;
  REQUIRE(profiles.size() == 3);
  CHECK(profiles.at("default").run_as == "nobody");
  CHECK(profiles.at("web").caps == std::vector<std::string>{"CAP_NET_BIND_SERVICE"});
  CHECK_FALSE(profiles.at("web").no_new_privileges);
  CHECK(profiles.at("empty") == Profile{});

  auto bad = from_text(kRequired + "[profile web]\ncaps = CAP_X, nope\n");
  CHECK(bad.message() == "Profile 'web': invalid caps entry 'nope' (expected CAP_NAME)");
}

TEST_CASE("agent auth_hook must be executable", "[conf]") {
  test::TempDir dir;
  std::string hook = conf_test::write(dir, "auth-hook", "#!/bin/sh\nexit 0\n", 0755);
  std::string plain = conf_test::write(dir, "not-exec", "#!/bin/sh\n", 0644);
  struct Row {
    std::string hook;
    std::string err;
  };
  const Row rows[] = {
      {hook, ""},
      {plain, "auth_hook '" + plain + "' is not executable"},
      {dir / "missing", "auth_hook '" + dir / "missing" + "' is not executable"},
      {dir.path(), "auth_hook '" + dir.path() + "' is not executable"}, // a directory
  };
  for (const auto& r : rows) {
    INFO(r.hook);
    auto load = from_text(kRequired + "auth_hook = " + r.hook + "\n");
    CHECK(load.message() == r.err);
    if (load.ok()) CHECK(load->config.auth_hook == r.hook);
  }
}

TEST_CASE("load_agent_config reads a file and keeps the line number on errors", "[conf]") {
  test::TempDir dir;
  std::string good =
      conf_test::write(dir, "agent.conf", kRequired + "[profile default]\nrun_as = nobody\n");
  auto load = load_agent_config(good);
  REQUIRE(load.ok());
  CHECK(load->config.path == good);
  CHECK(load->config.profiles.count("default"));

  std::string bad = conf_test::write(dir, "bad.conf", kRequired + "oops\n");
  CHECK(load_agent_config(bad).message() ==
        "Malformed config line in '" + bad + "' at line 5: oops");
}

TEST_CASE("load_agent_pairing_files: each key on its own, defaults for the rest", "[conf]") {
  test::TempDir dir;
  struct Row {
    const char* text; // nullptr: no file
    int port;
    std::string cert, ca, trusted_map;
  };
  const std::string dc = paths::agent_cert(), dca = paths::agent_ca(),
                    dmap = paths::agent_trusted_map();
  const Row rows[] = {
      {nullptr, 7443, dc, dca, dmap},
      {"oops\n", 7443, dc, dca, dmap}, // unparsable: every default
      {"port = 7460\n", 7460, dc, dca, dmap},
      {"port = 0\ncert = /c.crt\n", 7443, "/c.crt", dca, dmap}, // no other key is required
      {"port = 65536\nca = /ca.crt\n", 7443, dc, "/ca.crt", dmap},
      {"port = x\ntrusted_dispatchers_path = /m\n", 7443, dc, dca, "/m"},
      {"port = 7450\n[profile p]\nrun_as = bad name\n", 7450, dc, dca, dmap}, // not checked
  };
  int n = 0;
  for (const auto& r : rows) {
    INFO((r.text ? r.text : "(no file)"));
    std::string path = dir / ("agent" + std::to_string(n++) + ".conf");
    if (r.text) path = conf_test::write(dir, basename(path), r.text);
    AgentPairingFiles f = load_agent_pairing_files(path);
    CHECK(f.port == r.port);
    CHECK(f.cert == r.cert);
    CHECK(f.key == paths::agent_key());
    CHECK(f.ca == r.ca);
    CHECK(f.trusted_map == r.trusted_map);
  }
}

TEST_CASE("agent limits against slow and flooding clients", "[conf]") {
  struct Row {
    std::string extra;
    int64_t connections, per_ip, handshakes, untrusted, head_s, body_s;
    std::vector<ConfigWarning> warnings;
  };
  const Row rows[] = {
      {"", 1024, 128, 8, 8, 10, 10, {}},
      {"max_connections = 100\nmax_connections_per_ip = 5\nmax_handshakes_per_ip = 2\n"
       "max_untrusted = 3\nrequest_head_timeout = 4\nrequest_body_timeout = 6\n",
       100,
       5,
       2,
       3,
       4,
       6,
       {}},
      {"max_connections_per_ip = 0\nrequest_head_timeout = 86401\n",
       1024,
       128,
       8,
       8,
       10,
       10,
       {{"max_connections_per_ip", "invalid value '0' (expected an integer >= 1); using 128"},
        {"request_head_timeout",
         "invalid value '86401' (expected an integer from 1 to 86400); using 10"}}},
  };
  for (const auto& r : rows) {
    INFO(r.extra);
    auto load = from_text(kRequired + r.extra);
    REQUIRE(load.ok());
    const AgentConfig& c = load->config;
    CHECK(c.max_connections == r.connections);
    CHECK(c.max_connections_per_ip == r.per_ip);
    CHECK(c.max_handshakes_per_ip == r.handshakes);
    CHECK(c.max_untrusted == r.untrusted);
    CHECK(c.request_head_timeout == r.head_s);
    CHECK(c.request_body_timeout == r.body_s);
    CHECK(load->warnings == r.warnings);
  }
}

TEST_CASE("metrics_bind: [address:]port, loopback unless an address is written", "[conf]") {
  struct Row {
    const char* value;
    const char* ip; // nullptr: a config error naming the key
    int port;
  };
  const Row rows[] = {
      {"9443", "127.0.0.1", 9443},
      {"127.0.0.1:9443", "127.0.0.1", 9443},
      {" 0.0.0.0:1 ", "0.0.0.0", 1},
      {"192.0.2.7:65535", "192.0.2.7", 65535},
      {"[::1]:9443", "::1", 9443},
      {"[::]:9443", "::", 9443},
      {"", nullptr, 0},
      {"0", nullptr, 0},
      {"65536", nullptr, 0},
      {"127.0.0.1:", nullptr, 0},
      {"localhost:9443", nullptr, 0},
      {"::1:9443", nullptr, 0},
      {"[127.0.0.1]:9443", nullptr, 0},
      {"1.2.3:9443", nullptr, 0},
      {"127.0.0.1:94x3", nullptr, 0},
  };
  for (const Row& r : rows) {
    INFO(r.value);
    auto load = from_text(kRequired + "metrics_bind = " + r.value + "\n");
    if (!r.ip) {
      REQUIRE_FALSE(load.ok());
      CHECK(load.message() == std::string("Config key 'metrics_bind' must be [address:]port (an "
                                          "IP address and a port 1-65535), got '") +
                                  std::string(trim(r.value)) + "'");
      continue;
    }
    REQUIRE(load.ok());
    CHECK(*load->config.metrics_bind_ip == r.ip);
    CHECK(load->config.metrics_port == r.port);
  }
}
