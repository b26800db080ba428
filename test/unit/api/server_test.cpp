// Tests for src/api/server.cpp (tag [api]): the server's limits and deadlines from
// ctrl-exec.conf (tuning_from), as rows.
#include <catch2/catch.hpp>

#include "api/api.hpp"

using namespace cx;

TEST_CASE("api tuning: limits against slow and flooding clients", "[api]") {
  struct Row {
    conf::FlatConfig keys;
    size_t busy, connections, per_ip, handshakes;
    uint64_t request_ms, head_ms, body_ms;
    std::vector<std::string> warned; // keys
  };
  const Row rows[] = {
      {{}, 64, 256, 64, 8, 30000, 10000, 10000, {}},
      // The connection cap follows api_max_children unless set.
      {{{"api_max_children", "10"}}, 10, 40, 64, 8, 30000, 10000, 10000, {}},
      {{{"api_max_children", "10"},
        {"api_max_connections", "500"},
        {"api_max_connections_per_ip", "5"},
        {"api_max_handshakes_per_ip", "2"},
        {"api_request_timeout", "20"},
        {"api_request_head_timeout", "3"},
        {"api_request_body_timeout", "7"}},
       10,
       500,
       5,
       2,
       20000,
       3000,
       7000,
       {}},
      {{{"api_max_connections_per_ip", "0"}, {"api_request_head_timeout", "soon"}},
       64,
       256,
       64,
       8,
       30000,
       10000,
       10000,
       {"api_max_connections_per_ip", "api_request_head_timeout"}},
  };
  for (const auto& r : rows) {
    conf::FlatConfig raw = r.keys;
    raw["cert"] = "/c";
    raw["key"] = "/k";
    raw["ca"] = "/a";
    auto load = conf::make_dispatcher_config(raw, "vm");
    std::vector<conf::ConfigWarning> warnings;
    api::Tuning t = api::tuning_from(load.config, warnings);
    INFO(r.busy << " " << r.connections);
    CHECK(t.max_busy == r.busy);
    CHECK(t.max_connections == r.connections);
    CHECK(t.max_connections_per_ip == r.per_ip);
    CHECK(t.max_handshakes_per_ip == r.handshakes);
    CHECK(t.request_timeout_ms == r.request_ms);
    CHECK(t.head_timeout_ms == r.head_ms);
    CHECK(t.body_timeout_ms == r.body_ms);
    std::vector<std::string> warned;
    for (const auto& w : warnings)
      warned.push_back(w.key);
    CHECK(warned == r.warned);
  }
}

TEST_CASE("api tuning: api_metrics_open", "[api]") {
  struct Row {
    const char* value; // nullptr: not set
    bool open;
    bool warned;
  };
  const Row rows[] = {
      {nullptr, false, false}, {"yes", true, false},   {"YES", true, false},  {"1", true, false},
      {"on", true, false},     {"true", true, false},  {"no", false, false},  {"0", false, false},
      {"off", false, false},   {"maybe", false, true}, {"y es", false, true}, {"", false, true},
  };
  for (const Row& r : rows) {
    INFO((r.value ? r.value : "(unset)"));
    conf::FlatConfig raw{{"cert", "/c"}, {"key", "/k"}, {"ca", "/a"}};
    if (r.value) raw["api_metrics_open"] = r.value;
    auto load = conf::make_dispatcher_config(raw, "vm");
    std::vector<conf::ConfigWarning> warnings;
    api::Tuning t = api::tuning_from(load.config, warnings);
    CHECK(t.metrics_open == r.open);
    CHECK(warnings.size() == (r.warned ? 1u : 0u));
    if (r.warned) CHECK(warnings[0].key == "api_metrics_open");
  }
}
