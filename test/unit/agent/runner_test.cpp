// Tests for src/agent/runner.cpp, executor_frame.cpp, executor_client.cpp and async_job.cpp
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
#include "agent/executor_frame.hpp"
#include "agent/runner.hpp"
#include "base/files.hpp"
#include "base/time.hpp"
#include "testutil.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::agent;

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

TEST_CASE("executor frames round trip and reject malformed input", "[agent]") {
  ExecRequest req{"r1", "disp-1", "noop", "{\"x\":1}", {"a", "", "b c"}};
  auto frame = encode_request(req);
  REQUIRE(frame.ok());
  auto d = decode_request(*frame);
  REQUIRE(d.status == FrameStatus::complete);
  CHECK(d.consumed == frame->size());
  CHECK(d.request.reqid == "r1");
  CHECK(d.request.dispatcher_id == "disp-1");
  CHECK(d.request.script == "noop");
  CHECK(d.request.stdin_bytes == "{\"x\":1}");
  CHECK(d.request.args == req.args);
  // Every strict prefix needs more bytes.
  for (size_t n = 0; n < frame->size(); ++n)
    CHECK(decode_request(std::string_view(*frame).substr(0, n)).status == FrameStatus::need_more);

  auto be = [](uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i)
      s[static_cast<size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
    return s;
  };
  struct Bad {
    std::string bytes;
    const char* error;
  };
  const Bad bad[] = {
      {be(0), "frame too large"},
      {be(kMaxFrameBytes + 1), "frame too large"},
      {be(4) + be(100), "malformed request"}, // field overruns the frame
      {be(20) + be(0) + be(0) + be(0) + be(0) + be(300), "malformed request"},     // argc > 256
      {be(21) + be(0) + be(0) + be(0) + be(0) + be(0) + "x", "malformed request"}, // trailing
  };
  for (const auto& b : bad) {
    auto r = decode_request(b.bytes);
    CHECK(r.status == FrameStatus::error);
    CHECK(r.error == b.error);
  }
  ExecRequest many;
  many.args.assign(257, "x");
  CHECK_FALSE(encode_request(many).ok());

  ExecResponse resp{-1, "out", "executor: script not permitted"};
  std::string rb = encode_response(resp);
  auto rd = decode_response(rb);
  REQUIRE(rd.status == FrameStatus::complete);
  CHECK(rd.response.exit == -1);
  CHECK(rd.response.out == "out");
  CHECK(rd.response.err == "executor: script not permitted");
  CHECK(decode_response(rb.substr(0, rb.size() - 1)).status == FrameStatus::need_more);
  CHECK(decode_response(be(0) + be(kMaxResponseField + 1)).status == FrameStatus::error);
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
