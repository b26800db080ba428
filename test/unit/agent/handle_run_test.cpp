// Tests for src/agent/handle_run.cpp (tag [agent]): sync runs with real scripts, the refusals
// before a script starts, the auth hook (action run), and clients that leave.
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"

using namespace cx;
using namespace cx::agent;

namespace {
// Allowlists "hello", a script that leaves a mark; ran() tells whether it has run.
struct Hello {
  explicit Hello(test::AgentFixture& f) : marker(f.dir / "hello-ran") {
    f.allow("hello", "touch '" + marker + "'");
  }
  bool ran() const { return path_exists(marker); }
  std::string marker;
};
} // namespace

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
    Hello hello(f);
    f.load();
    auto call = f.call(r.body);
    handle_run(*f.ctx, call);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    if (*r.log) CHECK(f.logs() == std::vector<std::string>{r.log});
    if (!*r.log) CHECK(f.logs().empty());
    CHECK(f.ctx->pending() == 0);
    f.run();
    CHECK_FALSE(hello.ran());
  }
}

TEST_CASE("run refuses a serial the map does not hold", "[agent]") {
  test::AgentFixture f;
  f.allow("hello", "exit 0");
  f.load();
  f.serve(handle_run, R"({"script":"hello"})", test::kStrangerSerial);
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
    Hello hello(f);
    f.use_hook("$ENVEXEC_ACTION $ENVEXEC_SCRIPT $ENVEXEC_ARGS $ENVEXEC_USERNAME $ENVEXEC_TOKEN "
               "$ENVEXEC_DISPATCHER $ENVEXEC_DISPATCHER_SERIAL",
               r.hook);
    f.serve(handle_run,
            R"({"script":"hello","args":["a","b"],"reqid":"r1","username":"alice","token":"t0k"})");
    CHECK(f.hook_saw() == "run hello a b alice t0k disp-1 7f3a9c\n");
    CHECK(hello.ran() == r.runs);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    CHECK(f.logged(r.log));
    CHECK(f.ctx->pending() == 0);
  }
}

TEST_CASE("a client that leaves cancels a run only until its script starts", "[agent]") {
  struct Row {
    const char* hook; // nullptr: no auth hook
    bool runs;
    const char* log; // "" when nothing is logged
  };
  const Row rows[] = {
      {"sleep 30", false, ""}, // the hook is killed, no 30 s wait
      {nullptr, true, "ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=r1 SCRIPT=hello"},
  };
  for (const auto& r : rows) {
    INFO((r.hook ? r.hook : "no hook"));
    test::AgentFixture f;
    Hello hello(f);
    if (r.hook) f.use_hook("", r.hook);
    f.load();
    f.serve_and_leave(handle_run, R"({"script":"hello","reqid":"r1"})");
    CHECK(hello.ran() == r.runs);
    CHECK(f.client->answers.empty());
    if (*r.log) CHECK(f.logs() == std::vector<std::string>{r.log});
    if (!*r.log) CHECK(f.logs().empty());
    CHECK(f.ctx->pending() == 0);
  }
}

TEST_CASE("run kills a script at script_timeout", "[agent]") {
  test::AgentFixture f("script_timeout = 1");
  f.allow("slow", "sleep 30");
  f.load();
  f.serve(handle_run, R"({"script":"slow","reqid":"r1"})");
  CHECK(*json::get_bool(f.client->answer_json(), "timed_out"));
  CHECK(f.logged("ACTION=script-timeout REQID=r1 SCRIPT=slow TIMEOUT=1"));
}

TEST_CASE("run goes through the executor when executor_socket is set", "[agent]") {
  test::AgentFixture f;
  f.write_conf("executor_socket = " + f.dir / "no-executor.sock");
  f.allow("hello", "exit 0");
  f.load();
  f.serve(handle_run, R"({"script":"hello","reqid":"r1"})");
  auto doc = f.client->answer_json();
  CHECK(*json::get_int64(doc, "exit") == -1);
  CHECK(json::get_string(doc, "stderr")->rfind("executor unreachable: ", 0) == 0);
  CHECK(f.logged("ACTION=run DISPATCHER=disp-1 EXIT=-1 PEER=127.0.0.1 REQID=r1 SCRIPT=hello"));
}
