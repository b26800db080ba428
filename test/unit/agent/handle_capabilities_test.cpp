// Tests for src/agent/handle_capabilities.cpp (tag [agent]): the map gate with its own 403,
// the auth hook (action discovery), and a client that leaves while the hook runs.
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("capabilities lists the tags and the allowlisted scripts", "[agent]") {
  test::AgentFixture f;
  f.allow("hello", "echo hi");
  f.load();
  f.serve(handle_capabilities, "");
  std::string path = f.dir / "scripts/hello.sh";
  CHECK(f.client->answer().status == 200);
  CHECK(f.client->answer().body ==
        R"({"status":"ok","host":"agent.example","version":"9.9.9","tags":{"role":"web"},)"
        R"("scripts":[{"name":"hello","path":")" +
            path + R"(","executable":true,"profile":"default"}]})");
  CHECK(f.logs() ==
        std::vector<std::string>{"ACTION=capabilities DISPATCHER=disp-1 PEER=127.0.0.1 SCRIPTS=1"});
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("capabilities refuses a caller the map does not hold", "[agent]") {
  struct Row {
    const char* map;
    const char* reason;
  };
  const Row rows[] = {
      {"7f3a9c disp-1\n", "serial-mismatch"},
      {"", "\"no trusted dispatchers stored\""},
  };
  for (const auto& r : rows) {
    test::AgentFixture f;
    f.write("map", r.map);
    f.load();
    auto call = f.call("", test::kStrangerSerial);
    handle_capabilities(*f.ctx, call);
    CHECK(f.client->answer().status == 403);
    CHECK(f.client->answer().body == R"({"error":"forbidden"})");
    CHECK(f.logs() == std::vector<std::string>{"ACTION=capabilities-deny PEER=127.0.0.1 "
                                               "PEER_SERIAL=0bad REASON=" +
                                               std::string(r.reason)});
  }
}

TEST_CASE("capabilities asks the auth hook", "[agent]") {
  struct Row {
    const char* hook;
    int status;
    const char* deny_log; // "" when allowed
  };
  const Row rows[] = {
      {"exit 0", 200, ""},
      {"exit 1", 403, "ACTION=capabilities-deny DISPATCHER=disp-1 PEER=127.0.0.1 REASON=denied"},
      {"exit 3", 403,
       "ACTION=capabilities-deny DISPATCHER=disp-1 PEER=127.0.0.1 REASON=\"insufficient "
       "privilege\""},
  };
  for (const auto& r : rows) {
    INFO(r.hook);
    test::AgentFixture f;
    f.use_hook("$ENVEXEC_ACTION $ENVEXEC_DISPATCHER $ENVEXEC_DISPATCHER_SERIAL $ENVEXEC_SOURCE_IP",
               r.hook);
    auto call = f.call();
    handle_capabilities(*f.ctx, call);
    CHECK(f.client->answers.empty()); // the hook answers from the loop
    f.run();
    CHECK(f.hook_saw() == "discovery disp-1 7f3a9c 127.0.0.1\n");
    CHECK(f.client->answer().status == r.status);
    if (r.status == 403) {
      CHECK(f.client->answer().body == R"({"error":"not authorised"})");
      CHECK(f.logged(r.deny_log));
    }
    CHECK(f.ctx->pending() == 0);
  }
}

TEST_CASE("a client that leaves while the hook runs cancels the request", "[agent]") {
  test::AgentFixture f;
  std::string marker = f.dir / "hook-finished";
  f.use_hook("", "sleep 30; touch '" + marker + "'");
  f.serve_and_leave(handle_capabilities, ""); // the hook is killed: no 30 s wait
  CHECK(f.client->answers.empty());
  CHECK_FALSE(path_exists(marker));
  CHECK(f.ctx->pending() == 0);
}
