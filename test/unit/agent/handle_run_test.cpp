// Tests for src/agent/handle_run.cpp (tag [agent]): sync runs with real scripts, the refusals
// before a script starts, the auth hook (action run), and clients that leave.
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("run runs an allowlisted script and answers its result", "[agent]") {
  test::AgentFixture f;
  std::string ctx_file = f.dir / "context";
  f.allow("hello", "cat > '" + ctx_file + "'; echo \"hi $1\"; echo oops >&2; exit 3");
  f.load();
  auto call = f.call(
      R"({"script":"hello","args":["there"],"reqid":"r1","username":"alice","token":"t0k"})");
  handle_run(*f.ctx, call);
  CHECK(f.client->answers.empty());
  CHECK(f.ctx->pending() == 1);
  f.run();
  CHECK(f.client->answer().status == 200);
  CHECK(f.client->answer().body ==
        R"({"script":"hello","exit":3,"stdout":"hi there\n","stderr":"oops\n","reqid":"r1"})");
  CHECK(f.logs() == std::vector<std::string>{"ACTION=run DISPATCHER=disp-1 EXIT=3 "
                                             "PEER=127.0.0.1 REQID=r1 SCRIPT=hello"});
  CHECK(f.ctx->pending() == 0);
  // The script's stdin context (§3.5).
  auto doc = json::parse(test::slurp(ctx_file));
  REQUIRE(doc.ok());
  CHECK(*json::get_string(*doc, "script") == "hello");
  CHECK(*json::get_string_array(*doc, "args") == std::vector<std::string>{"there"});
  CHECK(*json::get_string(*doc, "reqid") == "r1");
  CHECK(*json::get_string(*doc, "peer_ip") == "127.0.0.1");
  CHECK(*json::get_string(*doc, "username") == "alice");
  CHECK(*json::get_string(*doc, "token") == "t0k");
  CHECK(*json::get_string(*doc, "dispatcher") == "disp-1");
}

TEST_CASE("run refuses before any script starts", "[agent]") {
  struct Row {
    const char* body;
    const char* reply;
    const char* log; // "" when nothing is logged
  };
  const Row rows[] = {
      {"not json", R"({"exit":-1,"error":"invalid JSON"})", ""},
      {"[1]", R"({"exit":-1,"error":"invalid JSON"})", ""},
      {R"({"script":"hello","args":"x","reqid":"r2"})",
       R"({"exit":-1,"reqid":"r2","error":"args must be an array"})", ""},
      {R"({"script":"nope","reqid":"r3"})",
       R"({"script":"nope","exit":-1,"reqid":"r3","error":"script not permitted"})",
       "ACTION=deny PEER=127.0.0.1 REQID=r3 SCRIPT=nope"},
      {R"({"script":"../hello"})",
       R"({"script":"../hello","exit":-1,"reqid":"","error":"script not permitted"})",
       "ACTION=deny PEER=127.0.0.1 REQID=(none) SCRIPT=../hello"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    test::AgentFixture f;
    std::string marker = f.dir / "ran";
    f.allow("hello", "touch '" + marker + "'");
    f.load();
    auto call = f.call(r.body);
    handle_run(*f.ctx, call);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    if (*r.log) CHECK(f.logs() == std::vector<std::string>{r.log});
    if (!*r.log) CHECK(f.logs().empty());
    CHECK(f.ctx->pending() == 0);
    f.run();
    CHECK_FALSE(path_exists(marker));
  }
}

TEST_CASE("run refuses a serial the map does not hold", "[agent]") {
  test::AgentFixture f;
  f.allow("hello", "exit 0");
  f.load();
  auto call = f.call(R"({"script":"hello"})", test::kStrangerSerial);
  handle_run(*f.ctx, call);
  CHECK(f.client->answer().status == 403);
  CHECK(f.client->answer().body == R"({"error":"serial mismatch","status":"forbidden"})");
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("run asks the auth hook before the script", "[agent]") {
  struct Row {
    const char* hook;
    bool runs;
    const char* reply;
    const char* log;
  };
  const Row rows[] = {
      {"exit 0", true, R"({"script":"hello","exit":0,"stdout":"","stderr":"","reqid":"r1"})",
       "ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=r1 SCRIPT=hello"},
      {"exit 3", false,
       R"({"script":"hello","exit":-1,"reqid":"r1","error":"not authorised: insufficient privilege"})",
       "ACTION=deny DISPATCHER=disp-1 PEER=127.0.0.1 REASON=\"insufficient privilege\" REQID=r1 "
       "SCRIPT=hello"},
  };
  for (const auto& r : rows) {
    INFO(r.hook);
    test::AgentFixture f;
    std::string marker = f.dir / "ran";
    std::string seen = f.dir / "seen";
    f.allow("hello", "touch '" + marker + "'");
    f.write_conf("auth_hook = " +
                 f.script("hook", "echo \"$ENVEXEC_ACTION $ENVEXEC_SCRIPT $ENVEXEC_ARGS "
                                  "$ENVEXEC_USERNAME $ENVEXEC_TOKEN $ENVEXEC_DISPATCHER "
                                  "$ENVEXEC_DISPATCHER_SERIAL\" > '" +
                                      seen + "'\n" + r.hook));
    f.load();
    auto call = f.call(
        R"({"script":"hello","args":["a","b"],"reqid":"r1","username":"alice","token":"t0k"})");
    handle_run(*f.ctx, call);
    f.run();
    CHECK(test::slurp(seen) == "run hello a b alice t0k disp-1 7f3a9c\n");
    CHECK(path_exists(marker) == r.runs);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    CHECK(f.logged(r.log));
    CHECK(f.ctx->pending() == 0);
  }
}

TEST_CASE("a client that leaves while the hook runs cancels the run", "[agent]") {
  test::AgentFixture f;
  std::string marker = f.dir / "ran";
  f.allow("hello", "touch '" + marker + "'");
  f.write_conf("auth_hook = " + f.script("hook", "sleep 30"));
  f.load();
  auto call = f.call(R"({"script":"hello","reqid":"r1"})");
  handle_run(*f.ctx, call);
  f.client->leave();
  CHECK(f.ctx->pending() == 0);
  f.run(); // the hook is killed
  CHECK_FALSE(path_exists(marker));
  CHECK(f.logs().empty());
}

TEST_CASE("a started script runs to its end after its client leaves", "[agent]") {
  test::AgentFixture f;
  std::string marker = f.dir / "ran";
  f.allow("hello", "touch '" + marker + "'");
  f.load();
  auto call = f.call(R"({"script":"hello","reqid":"r1"})");
  handle_run(*f.ctx, call);
  f.client->leave(); // the script has started; the loop has not run yet, so it has not ended
  CHECK(f.ctx->pending() == 1);
  f.run();
  CHECK(path_exists(marker));
  CHECK(f.client->answers.empty());
  CHECK(f.logged("ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=r1 SCRIPT=hello"));
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("run kills a script at script_timeout", "[agent]") {
  test::AgentFixture f("script_timeout = 1");
  f.allow("slow", "sleep 30");
  f.load();
  auto call = f.call(R"({"script":"slow","reqid":"r1"})");
  handle_run(*f.ctx, call);
  f.run();
  auto doc = json::parse(f.client->answer().body);
  REQUIRE(doc.ok());
  CHECK(*json::get_bool(*doc, "timed_out"));
  CHECK(f.logged("ACTION=script-timeout REQID=r1 SCRIPT=slow TIMEOUT=1"));
}

TEST_CASE("run goes through the executor when executor_socket is set", "[agent]") {
  test::AgentFixture f;
  f.write_conf("executor_socket = " + f.dir / "no-executor.sock");
  f.allow("hello", "exit 0");
  f.load();
  auto call = f.call(R"({"script":"hello","reqid":"r1"})");
  handle_run(*f.ctx, call);
  f.run();
  auto doc = json::parse(f.client->answer().body);
  REQUIRE(doc.ok());
  CHECK(*json::get_int64(*doc, "exit") == -1);
  CHECK(json::get_string(*doc, "stderr")->rfind("executor unreachable: ", 0) == 0);
  CHECK(f.logged("ACTION=run DISPATCHER=disp-1 EXIT=-1 PEER=127.0.0.1 REQID=r1 SCRIPT=hello"));
}
