// Tests for src/agent/handle_ping.cpp (tag [agent]).
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("ping answers a trusted dispatcher", "[agent]") {
  test::AgentFixture f;
  struct Row {
    const char* body;
    bool staged;
    const char* reply;
    const char* log;
  };
  const Row rows[] = {
      {R"({"reqid":"r1"})", false,
       R"({"status":"ok","host":"agent.example","version":"9.9.9","expiry":"Jan  1 00:00:00 2031 GMT","staged":false,"reqid":"r1"})",
       "ACTION=ping DISPATCHER=disp-1 PEER=127.0.0.1 REQID=r1"},
      {"", true,
       R"({"status":"ok","host":"agent.example","version":"9.9.9","expiry":"Jan  1 00:00:00 2031 GMT","staged":true,"reqid":""})",
       "ACTION=ping DISPATCHER=disp-1 PEER=127.0.0.1 REQID=(none)"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    if (r.staged) f.write("agent.crt.staged", "x");
    auto call = f.call(r.body);
    log::clear_captured();
    handle_ping(*f.ctx, call);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    CHECK(f.logs() == std::vector<std::string>{r.log});
  }
}

TEST_CASE("ping refuses a serial the map does not hold, and counts the refusal", "[agent]") {
  test::AgentFixture f("rate_limit_volume = 2/60/300");
  for (int i = 0; i < 2; ++i) {
    CHECK_FALSE(f.ctx->blocked("127.0.0.1"));
    auto call = f.call(R"({"reqid":"r1"})", test::kStrangerSerial);
    handle_ping(*f.ctx, call);
    CHECK(f.client->answer().status == 403);
    CHECK(f.client->answer().body == R"({"error":"serial mismatch","status":"forbidden"})");
  }
  CHECK(f.logged("ACTION=serial-reject PEER=127.0.0.1 PEER_SERIAL=0bad REQID=(none)"));
  CHECK(f.ctx->blocked("127.0.0.1"));
}
