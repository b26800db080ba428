// Tests for src/agent/handle_rotate.cpp (tag [agent]): edits of the trusted map under the
// caller's own id, the refusals, the auth hook (action rotate), and the reload that follows.
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("rotate-serial edits the map under the caller's id", "[agent]") {
  struct Row {
    const char* body;
    const char* reply;
    const char* map_after; // the keys and ids the agent then trusts
    const char* log;       // "" when nothing is logged
  };
  const Row rows[] = {
      {R"({"serial":"ABC","action":"add"})",
       R"({"status":"ok","action":"add","serial":"ABC","dispatcher":"disp-1"})",
       "7f3a9c=disp-1 abc=disp-1 dd=disp-2 ",
       "ACTION=rotate DISPATCHER=disp-1 PEER=127.0.0.1 SERIAL=ABC SERIAL_ACTION=add"},
      {R"({"serial":"7f3a9c","action":"remove"})",
       R"({"status":"ok","action":"remove","serial":"7f3a9c","dispatcher":"disp-1"})", "dd=disp-2 ",
       "ACTION=rotate DISPATCHER=disp-1 PEER=127.0.0.1 SERIAL=7f3a9c SERIAL_ACTION=remove"},
      {R"({"serial":"dd","action":"add"})",
       R"({"status":"error","error":"serial already trusted for dispatcher 'disp-2'"})",
       "7f3a9c=disp-1 dd=disp-2 ",
       "ACTION=rotate-fail DISPATCHER=disp-1 ERROR=\"serial already trusted for dispatcher "
       "'disp-2'\""},
      {R"({"serial":"abc","action":"swap"})",
       R"({"status":"error","error":"invalid action 'swap'"})", "7f3a9c=disp-1 dd=disp-2 ", ""},
      {R"({"action":"add"})", R"({"status":"error","error":"serial required"})",
       "7f3a9c=disp-1 dd=disp-2 ", ""},
      {"not json", R"({"status":"error","error":"serial required"})", "7f3a9c=disp-1 dd=disp-2 ",
       ""},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    test::AgentFixture f;
    f.write("map", "7f3a9c disp-1\ndd disp-2\n");
    f.load();
    f.serve(handle_rotate, r.body);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    std::string trusted;
    for (const auto& [key, id] : f.ctx->state()->trusted.entries())
      trusted += key + "=" + id + " ";
    CHECK(trusted == r.map_after);
    if (*r.log) CHECK(f.logged(r.log));
    if (!*r.log) CHECK(f.logs().empty());
  }
}

TEST_CASE("rotate-serial adopts the new map even when agent.conf cannot be reloaded", "[agent]") {
  test::AgentFixture f;
  f.write("agent.conf", "port = 7443\n"); // no cert: a reload fails
  auto call = f.call(R"({"serial":"abc","action":"add"})");
  handle_rotate(*f.ctx, call);
  CHECK(f.client->answer().body ==
        R"({"status":"ok","action":"add","serial":"abc","dispatcher":"disp-1"})");
  CHECK(f.logged("ACTION=reload ERROR=\"Missing required config key 'cert'\" STATUS=failed"));
  const std::string* id = f.ctx->state()->trusted.find("abc");
  REQUIRE(id);
  CHECK(*id == "disp-1");
}

TEST_CASE("rotate-serial asks the auth hook", "[agent]") {
  test::AgentFixture f;
  f.use_hook("$ENVEXEC_ACTION $ENVEXEC_ARGS $ENVEXEC_TOKEN $ENVEXEC_DISPATCHER", "exit 2");
  f.serve(handle_rotate, R"({"serial":"abc","action":"add","token":"t0k"})");
  CHECK(f.hook_saw() == "rotate add abc t0k disp-1\n");
  CHECK(f.client->answer().status == 403);
  CHECK(f.client->answer().body == R"({"error":"not authorised: bad credentials"})");
  CHECK(f.logged("ACTION=rotate-deny DISPATCHER=disp-1 REASON=\"bad credentials\""));
  CHECK(f.ctx->state()->trusted.find("abc") == nullptr);
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("rotate-serial refuses a serial the map does not hold", "[agent]") {
  test::AgentFixture f;
  auto call = f.call(R"({"serial":"abc","action":"add"})", test::kStrangerSerial);
  handle_rotate(*f.ctx, call);
  CHECK(f.client->answer().status == 403);
  CHECK(f.client->answer().body == R"({"error":"serial mismatch","status":"forbidden"})");
  CHECK(f.ctx->state()->trusted.find("abc") == nullptr);
}
