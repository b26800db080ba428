// Tests for src/agent/runner.cpp, executor_client.cpp and async_job.cpp
// (tag [agent]): the script contract, exit-code mapping, frames, and async records.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <utime.h>

#include <thread>

#include "agent/async_job.hpp"
#include "agent/executor_client.hpp"
#include "agent/runner.hpp"
#include "base/files.hpp"
#include "base/time.hpp"
#include "proto/executor_frame.hpp"
#include "testutil.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::agent;
using namespace cx::proto;

TEST_CASE("script environment keeps only PATH and the listed variables", "[agent]") {
  std::vector<std::string> parent = {"HOME=/root",  "LANG=C",     "LD_PRELOAD=/x.so", "PATH=/evil",
                                     "TZ=UTC",      "USERX=no",   "USER=ops",         "BASH_ENV=/x",
                                     "LOGNAME=ops", "TERM=xterm", "LC_ALL=C.UTF-8"};
  std::vector<char*> envp;
  for (auto& e : parent)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  auto env = script_environment(envp.data());
  CHECK(env == std::vector<std::string>{
                   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME=/root", "LANG=C", "LC_ALL=C.UTF-8", "TZ=UTC", "TERM=xterm", "USER=ops",
                   "LOGNAME=ops"});
}

TEST_CASE("the stdin context", "[agent]") {
  ScriptContext c{"s", {"a", "b c"}, "r", "10.0.0.1", "u", "t", "d", "2026-01-01T00:00:00Z"};
  CHECK(context_json(c) ==
        R"({"script":"s","args":["a","b c"],"reqid":"r","peer_ip":"10.0.0.1","username":"u",)"
        R"("token":"t","dispatcher":"d","timestamp":"2026-01-01T00:00:00Z"})");
}

TEST_CASE("process outcomes map to the original's exit codes", "[agent]") {
  using O = event::ProcessResult::Outcome;
  RunSpec spec;
  spec.path = "/opt/s.sh";
  spec.timeout_ms = 5000;
  struct Row {
    O outcome;
    int code, signal;
    bool timed_out;
    int exit;
    bool has_error;
    const char* err_suffix;
  };
  const Row rows[] = {
      {O::exited, 0, 0, false, 0, false, ""},
      {O::exited, 3, 0, false, 3, false, ""},
      {O::exited, 255, 0, false, 255, false, ""},
      {O::signaled, 0, 9, false, 126, false, ""},
      {O::signaled, 0, 15, false, 126, false, ""},
      {O::signaled, 0, 9, true, 126, true, ""},
      {O::exec_failed, 0, 0, false, 127, true, "no such file or directory\n"},
      {O::spawn_failed, 0, 0, false, -1, true, "no such file or directory\n"},
  };
  for (const auto& r : rows) {
    event::ProcessResult pr;
    pr.outcome = r.outcome;
    pr.exit_code = r.code;
    pr.signal = r.signal;
    pr.timed_out = r.timed_out;
    pr.error = "no such file or directory";
    pr.err = "partial";
    auto o = outcome_from(pr, spec);
    CHECK(o.exit == r.exit);
    CHECK(o.error.has_value() == r.has_error);
    CHECK(o.timed_out == r.timed_out);
    CHECK(o.err.substr(0, 7) == "partial");
    if (*r.err_suffix) CHECK_THAT(o.err, Catch::EndsWith(r.err_suffix));
  }
  event::ProcessResult to;
  to.outcome = O::signaled;
  to.signal = 9;
  to.timed_out = true;
  CHECK(*outcome_from(to, spec).error == "script timed out after 5s");
}

TEST_CASE("start_script runs with argv, stdin and no shell", "[agent]") {
  event::Loop loop;
  RunSpec spec;
  spec.path = "/bin/sh";
  spec.args = {"-c", "printf '%s|' \"$0\" \"$1\"; cat; echo err >&2; exit 4", "zero", "$(id)"};
  spec.stdin_data = "ctx";
  RunOutcome got;
  auto p = start_script(loop, spec, [&](RunOutcome o) { got = std::move(o); });
  loop.run();
  CHECK(got.exit == 4);
  CHECK(got.out == "zero|$(id)|ctx");
  CHECK(got.err == "err\n");

  spec.path = "/nonexistent/script";
  spec.args = {};
  auto p2 = start_script(loop, spec, [&](RunOutcome o) { got = std::move(o); });
  loop.run();
  CHECK(got.exit == 127);
}

TEST_CASE("executor client: a round trip and the unreachable path", "[agent]") {
  test::TempDir dir;
  std::string sock = dir / "exec.sock";
  event::Loop loop;
  ExecResponse got;
  got.exit = 99;
  auto none = ExecutorCall::start(loop, sock, ExecRequest{}, [&](ExecResponse r) { got = r; });
  loop.run();
  CHECK(got.exit == -1);
  CHECK(got.out.empty());
  CHECK_THAT(got.err, Catch::StartsWith("executor unreachable: "));

  // A one-shot executor on a thread: reads a frame, answers with what it got.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  std::thread executor([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    std::string in;
    char buf[4096];
    for (;;) {
      auto d = decode_request(in);
      if (d.status != FrameStatus::need_more) {
        ExecResponse r{7, d.request.script + ":" + d.request.stdin_bytes,
                       std::to_string(d.request.args.size())};
        std::string out = encode_response(r);
        (void)!::write(c, out.data(), out.size());
        break;
      }
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    ::close(c);
  });
  auto call = ExecutorCall::start(loop, sock, ExecRequest{"r", "d", "noop", "ctx", {"a", "b"}},
                                  [&](ExecResponse r) { got = r; });
  loop.run();
  executor.join();
  ::close(fd);
  CHECK(got.exit == 7);
  CHECK(got.out == "noop:ctx");
  CHECK(got.err == "2");
}

TEST_CASE("async records: paths, writing, lookup and purge", "[agent]") {
  CHECK(async_lock_path("/r", "a b/c") == "/r/.locks/a_b_c.lock");
  CHECK(async_record_path("/r", "disp-1", "x1") == "/r/disp-1/x1.json");
  CHECK(is_owner_id("disp-1"));
  CHECK_FALSE(is_owner_id(".hidden"));
  CHECK_FALSE(is_owner_id("a/b"));

  test::TempDir dir;
  std::string runs = dir / "runs";
  proto::ResultRecord rec{"x1", "running", "noop", "disp-1", "2026-01-01T00:00:00Z", {}, {}, {},
                          {},   {},        false,  false};
  REQUIRE(write_async_record(runs, rec).ok());
  auto found = find_async_record(runs, "disp-1", "x1");
  CHECK(found.kind == RecordLookup::Kind::found);
  CHECK(found.status == "running");
  CHECK(found.json == rec.to_json());
  CHECK(find_async_record(runs, "disp-2", "x1").kind == RecordLookup::Kind::missing);
  CHECK(find_async_record(runs, "disp-1", "../x1").kind == RecordLookup::Kind::missing);
  rec.owner = "../evil";
  CHECK_FALSE(write_async_record(runs, rec).ok());

  REQUIRE(write_file_atomic(runs + "/flat.json", R"({"owner":"disp-1","status":"done"})").ok());
  CHECK(find_async_record(runs, "disp-1", "flat").kind == RecordLookup::Kind::found);
  CHECK(find_async_record(runs, "disp-2", "flat").kind == RecordLookup::Kind::not_owner);

  int64_t now = unix_now();
  CHECK(purge_async_records(runs, now) == 0);
  CHECK(purge_async_records(runs, now + kRecordTtlSeconds + 10) == 2);
  CHECK(find_async_record(runs, "disp-1", "x1").kind == RecordLookup::Kind::missing);
}

TEST_CASE("async records that are not regular files are neither read nor purged through",
          "[agent]") {
  test::TempDir dir;
  std::string runs = dir / "runs";
  REQUIRE(make_dirs(runs + "/disp-1").ok());
  // Old records outside the runs directory, reachable through planted links.
  std::string outside = dir / "outside";
  REQUIRE(make_dirs(outside).ok());
  REQUIRE(write_file_atomic(outside + "/keep.json", R"({"owner":"disp-1","status":"done"})").ok());
  struct utimbuf old_time {};
  REQUIRE(::utime((outside + "/keep.json").c_str(), &old_time) == 0); // mtime 1970
  REQUIRE(::symlink((outside + "/keep.json").c_str(), (runs + "/disp-1/linked.json").c_str()) == 0);
  REQUIRE(::symlink(outside.c_str(), (runs + "/disp-2").c_str()) == 0);
  REQUIRE(::mkfifo((runs + "/disp-1/fifo.json").c_str(), 0600) == 0);
  CHECK(find_async_record(runs, "disp-1", "linked").kind == RecordLookup::Kind::missing);
  CHECK(find_async_record(runs, "disp-1", "fifo").kind == RecordLookup::Kind::missing);
  CHECK(purge_async_records(runs, unix_now()) == 0);
  CHECK(path_exists(outside + "/keep.json"));
  CHECK(path_exists(runs + "/disp-1/linked.json"));
}

TEST_CASE("async job spec round trip and validation", "[agent]") {
  AsyncJob j;
  j.runs_dir = "/r";
  j.script = "noop";
  j.path = "/opt/noop.sh";
  j.args = {"a", "b"};
  j.context = "{}";
  j.reqid = "r1";
  j.owner = "disp-1";
  j.started = "2026-01-01T00:00:00Z";
  j.timeout_ms = 1000;
  j.output_limit = 10;
  auto back = AsyncJob::from_json(j.to_json());
  REQUIRE(back.ok());
  CHECK(back->to_json() == j.to_json());
  j.reqid = "../x";
  CHECK_FALSE(AsyncJob::from_json(j.to_json()).ok());
  CHECK_FALSE(AsyncJob::from_json("{").ok());
  auto argv = supervisor_argv(*back);
  REQUIRE(argv.size() >= 4);
  CHECK(argv[argv.size() - 3] == kSupervisorMode);
  CHECK(argv.back() == "r1");
}
