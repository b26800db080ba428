// Tests for src/agent/handle_run_async.cpp (tag [agent]): an authorised async /run is refused,
// found busy, or accepted with its `running` record written and its supervisor started.
#include <catch2/catch.hpp>

#include "agent/async_job.hpp"
#include "handler_fixture.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("async run is accepted: record written, supervisor started", "[agent]") {
  test::AgentFixture f;
  f.allow("hello", "exit 0");
  f.load();
  auto call = f.call(R"({"script":"hello","reqid":"r1","async":true})");
  // The supervisor is this binary (/proc/self/exe) in the agent's hidden mode; the test binary
  // runs no test for those arguments and exits. The supervisor itself is tested in
  // runner_test.cpp and e2e/agent/test_agent_async.py.
  handle_run(*f.ctx, call);
  CHECK(f.client->answer().status == 202);
  CHECK(f.client->answer().body == R"({"script":"hello","status":"accepted","reqid":"r1"})");
  CHECK(f.logs() == std::vector<std::string>{"ACTION=run-async DISPATCHER=disp-1 "
                                             "PEER=127.0.0.1 REQID=r1 SCRIPT=hello"});
  auto doc = json::parse(test::slurp(async_record_path(f.dir / "runs", "disp-1", "r1")));
  REQUIRE(doc.ok());
  CHECK(*json::get_string(*doc, "status") == "running");
  CHECK(*json::get_string(*doc, "owner") == "disp-1");
  CHECK(*json::get_string(*doc, "script") == "hello");
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("async run refusals", "[agent]") {
  enum class Setup { none, runs_is_a_file };
  struct Row {
    const char* body;
    Setup setup;
    std::string_view error;
    const char* log; // "" when nothing is logged
  };
  const Row rows[] = {
      {R"({"script":"hello","async":true})", Setup::none, proto::kAsyncNeedsReqid, ""},
      {R"({"script":"hello","reqid":"r.1","async":true})", Setup::none, proto::kAsyncNeedsReqid,
       ""},
      {R"({"script":"hello","reqid":"r1","async":true})", Setup::runs_is_a_file,
       proto::kAsyncStartFailed, "ACTION=async-store-fail ERROR="},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    test::AgentFixture f;
    if (r.setup == Setup::runs_is_a_file) f.write("runs", "");
    f.allow("hello", "exit 0");
    f.load();
    auto call = f.call(r.body);
    handle_run(*f.ctx, call);
    auto rq = proto::parse_run_request(r.body).request;
    proto::RunResult expected;
    expected.script = "hello";
    expected.reqid = rq.reqid;
    expected.error = std::string(r.error);
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == expected.to_json());
    auto logs = f.logs();
    if (!*r.log) CHECK(logs.empty());
    if (*r.log) {
      REQUIRE(logs.size() == 1);
      CHECK(logs[0].rfind(r.log, 0) == 0);
    }
    CHECK(f.ctx->pending() == 0);
  }
}

TEST_CASE("async run with an executor is accepted and its job names the socket", "[agent]") {
  // The original refuses async runs when an executor is configured; ours hands the job's
  // script to the executor from the supervisor (docs/COMPATIBILITY.md).
  test::AgentFixture f;
  f.write_conf("executor_socket = " + f.dir / "x.sock");
  f.allow("hello", "exit 0");
  f.load();
  auto call = f.call(R"({"script":"hello","reqid":"r1","async":true})");
  handle_run(*f.ctx, call);
  CHECK(f.client->answer().status == 202);
  CHECK(f.client->answer().body == R"({"script":"hello","status":"accepted","reqid":"r1"})");

  AsyncJob job;
  job.runs_dir = "/r";
  job.script = "hello";
  job.path = "/s/hello";
  job.reqid = "r1";
  job.owner = "disp-1";
  job.executor_socket = "/run/x.sock";
  auto back = AsyncJob::from_json(job.to_json());
  REQUIRE(back.ok());
  CHECK(back->executor_socket == "/run/x.sock");
}

TEST_CASE("async run of a script already running is 409", "[agent]") {
  test::AgentFixture f;
  f.allow("hello", "exit 0");
  f.load();
  std::string runs = f.dir / "runs";
  REQUIRE(make_dirs(runs + "/.locks").ok());
  FileLock held;
  REQUIRE(held.lock(async_lock_path(runs, "hello"), false).ok());
  auto call = f.call(R"({"script":"hello","reqid":"r1","async":true})");
  handle_run(*f.ctx, call);
  CHECK(f.client->answer().status == 409);
  CHECK(f.client->answer().body ==
        R"({"script":"hello","status":"busy","reqid":"r1","error":"script already running"})");
  CHECK(f.logs() ==
        std::vector<std::string>{"ACTION=run-async-busy PEER=127.0.0.1 REQID=r1 SCRIPT=hello"});
  CHECK_FALSE(path_exists(async_record_path(runs, "disp-1", "r1")));
  CHECK(f.ctx->pending() == 0);
}
