// Tests for src/agent/admission.cpp (tag [agent]): agent.conf's limits as the server takes them,
// and the pool of peers whose certificate is not in the trusted map.
#include <catch2/catch.hpp>

#include "agent/admission.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("agent.conf limits become the server's tuning", "[agent]") {
  conf::AgentConfig defaults;
  http::ServerTuning t = server_tuning(defaults);
  CHECK(t.admission.max_connections == 1024);
  CHECK(t.admission.max_pending_per_ip == 128);
  CHECK(t.admission.max_handshakes_per_ip == 8);
  CHECK(t.head_timeout_ms == 10000);
  CHECK(t.body_timeout_ms == 10000);

  conf::AgentConfig c;
  c.max_connections = 50;
  c.max_connections_per_ip = 4;
  c.max_handshakes_per_ip = 2;
  c.request_head_timeout = 3;
  c.request_body_timeout = 7;
  t = server_tuning(c);
  CHECK(t.admission.max_connections == 50);
  CHECK(t.admission.max_pending_per_ip == 4);
  CHECK(t.admission.max_handshakes_per_ip == 2);
  CHECK(t.head_timeout_ms == 3000);
  CHECK(t.body_timeout_ms == 7000);
}

TEST_CASE("the untrusted pool makes room by shedding its oldest member still sending", "[agent]") {
  struct Row {
    const char* what;
    std::vector<uint64_t> members;
    size_t capacity;
    std::vector<uint64_t> sending; // members that may be shed
    std::optional<uint64_t> room;  // 0: room already; nullopt: full of requests being answered
  };
  const Row rows[] = {
      {"empty", {}, 8, {}, 0},
      {"room left", {3, 5}, 3, {}, 0},
      {"full: the oldest goes", {3, 5, 9}, 3, {3, 5, 9}, 3},
      {"full: the oldest still sending goes", {3, 5, 9}, 3, {9, 5}, 5},
      {"full of requests being answered: no room", {3, 5, 9}, 3, {}, std::nullopt},
      {"over capacity after a reload lowered it", {3, 5, 9}, 1, {9}, 9},
  };
  for (const auto& r : rows) {
    INFO(r.what);
    UntrustedPool pool;
    for (uint64_t id : r.members)
      pool.add(id);
    auto sending = [&](uint64_t id) {
      return std::find(r.sending.begin(), r.sending.end(), id) != r.sending.end();
    };
    CHECK(pool.make_room(r.capacity, sending) == r.room);
  }
  UntrustedPool pool;
  pool.add(4);
  CHECK(pool.contains(4));
  CHECK(pool.size() == 1);
  CHECK(pool.remove(4));
  CHECK_FALSE(pool.remove(4));
  CHECK_FALSE(pool.contains(4));
}
