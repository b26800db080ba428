// Tests for src/event/process.cpp: real children, no shell unless the test asks for one.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "base/time.hpp"
#include "event/process.hpp"

using namespace cx::event;
using Outcome = ProcessResult::Outcome;

namespace {
ProcessResult run(ProcessOptions opts) {
  Loop loop;
  ProcessResult result;
  bool done = false;
  auto p = Process::start(loop, std::move(opts), [&](ProcessResult r) {
    result = std::move(r);
    done = true;
  });
  loop.run();
  REQUIRE(done);
  return result;
}
} // namespace

TEST_CASE("argv reaches the child verbatim, with no shell", "[event]") {
  const std::vector<std::string> args = {"two words", "$HOME", "`id`", "a;b", "x\"y", "", "*"};
  ProcessOptions o;
  o.argv = {"/usr/bin/printf", "[%s]\\n"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  auto r = run(o);
  CHECK(r.outcome == Outcome::exited);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "[two words]\n[$HOME]\n[`id`]\n[a;b]\n[x\"y]\n[]\n[*]\n");
}

TEST_CASE("stdin is written then closed, and the environment is replaced", "[event]") {
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "cat; echo; echo \"$ONLY\"; env | wc -l"};
  o.env = std::vector<std::string>{"ONLY=this", "PATH=/usr/bin:/bin"};
  o.stdin_data = "{\"reqid\":\"abc\"}";
  auto r = run(o);
  CHECK(r.exit_code == 0);
  // sh itself adds PWD (and maybe SHLVL/_), so only check our variable arrived.
  CHECK(r.out.rfind("{\"reqid\":\"abc\"}\nthis\n", 0) == 0);
}

TEST_CASE("exit codes, signals and exec failures are reported distinctly", "[event]") {
  struct Row {
    std::vector<std::string> argv;
    Outcome outcome;
    int code;
  };
  const Row rows[] = {
      {{"/bin/sh", "-c", "exit 3"}, Outcome::exited, 3},
      {{"/bin/sh", "-c", "kill -TERM $$"}, Outcome::signaled, 15},
      {{"/nonexistent/script"}, Outcome::exec_failed, 0},
      {{"/proc/self/status"}, Outcome::exec_failed, 0}, // exists, not executable
  };
  for (const auto& row : rows) {
    ProcessOptions o;
    o.argv = row.argv;
    auto r = run(o);
    INFO(row.argv[0]);
    CHECK(r.outcome == row.outcome);
    if (row.outcome == Outcome::exited) CHECK(r.exit_code == row.code);
    if (row.outcome == Outcome::signaled) CHECK(r.signal == row.code);
    if (row.outcome == Outcome::exec_failed) CHECK_FALSE(r.error.empty());
  }
}

TEST_CASE("10 MiB on stdout and 10 MiB on stderr at once never deadlock", "[event]") {
  ProcessOptions o;
  // Interleave the streams so a reader that drains one pipe before the other would block.
  o.argv = {"/bin/sh", "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 1048576 /dev/zero; "
            "head -c 1048576 /dev/zero >&2; done"};
  auto r = run(o);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == 10u << 20);
  CHECK(r.err.size() == 10u << 20);
}

TEST_CASE("the output cap keeps the first bytes and drains the rest", "[event]") {
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "head -c 100000 /dev/zero; echo tail >&2"};
  o.output_limit = 1000;
  auto r = run(o);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == 1000);
  CHECK(r.out_truncated);
  CHECK(r.err == "tail\n");
  CHECK_FALSE(r.err_truncated);
}

TEST_CASE("the deadline kills the whole process group", "[event]") {
  ProcessOptions o;
  // A background grandchild holds the pipes open; the group kill must reach it too.
  o.argv = {"/bin/sh", "-c", "sleep 30 & sleep 30"};
  o.timeout_ms = 300;
  uint64_t start = cx::monotonic_ms();
  auto r = run(o);
  CHECK(r.timed_out);
  CHECK(r.outcome == Outcome::signaled);
  CHECK(r.signal == 9);
  CHECK(cx::monotonic_ms() - start < 5000);
}

TEST_CASE("a child that ignores stdin does not break the runner", "[event]") {
  ProcessOptions o;
  o.argv = {"/bin/true"};
  o.stdin_data = std::string(1 << 20, 'x'); // more than a pipe buffer
  auto r = run(o);
  CHECK(r.outcome == Outcome::exited);
  CHECK(r.exit_code == 0);
}

TEST_CASE("stdin_timeout closes stdin, reports it at once, and lets the child run", "[event]") {
  // The child reads nothing until its stdin is closed by the timeout; then it drains what
  // was written and reports the count. The callback must come before the child ends.
  ProcessOptions o;
  o.argv = {"/bin/sh", "-c", "sleep 1; wc -c"};
  o.stdin_data = std::string(1 << 20, 'x'); // far more than a pipe buffer
  o.stdin_timeout_ms = 100;
  std::vector<std::string> events;
  size_t reported = 0;
  o.on_stdin_timeout = [&](size_t unwritten) {
    events.push_back("stdin-timeout");
    reported = unwritten;
  };
  Loop loop;
  ProcessResult r;
  auto p = Process::start(loop, std::move(o), [&](ProcessResult res) {
    events.push_back("done");
    r = std::move(res);
  });
  loop.run();
  CHECK(events == std::vector<std::string>{"stdin-timeout", "done"});
  CHECK(r.outcome == Outcome::exited);
  CHECK(r.exit_code == 0);
  REQUIRE(r.stdin_timed_out);
  CHECK(r.stdin_unwritten == reported);
  CHECK(reported > 0);
  CHECK(std::stoul(r.out) + reported == (1u << 20));
}

TEST_CASE("destroying a Process kills the child and drops the callback", "[event]") {
  Loop loop;
  bool called = false;
  ProcessOptions o;
  o.argv = {"/bin/sleep", "30"};
  auto p = Process::start(loop, o, [&](ProcessResult) { called = true; });
  int pid = p->pid();
  REQUIRE(pid > 0);
  Timer t(loop);
  t.start(50, [&] { p.reset(); });
  loop.run();
  CHECK_FALSE(called);
  CHECK(::kill(pid, 0) != 0); // gone (reaped by libuv's SIGCHLD handling or already dead)
}

TEST_CASE("an orphaned child's runner is freed when it is reaped or the loop goes first",
          "[event]") {
  // Destroying a Process before its child exits leaves the process handle open until libuv
  // reaps the child. If the loop is destroyed first the exit is never seen: the runner must be
  // freed all the same (LeakSanitizer reports it otherwise). The sentinel lives in the
  // runner's options, so it tells whether the runner was freed.
  struct Row {
    const char* name;
    bool detached;
    bool run_loop; // let the loop reap the killed child before it is destroyed
  };
  const Row rows[] = {
      {"killed, reaped by the loop", false, true},
      {"killed, loop destroyed first", false, false},
      {"detached, loop destroyed first", true, false},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    auto sentinel = std::make_shared<int>(0);
    std::weak_ptr<int> watch = sentinel;
    int pid = 0;
    bool called = false;
    {
      Loop loop;
      ProcessOptions o;
      o.argv = {"/bin/sleep", "30"};
      o.detached = row.detached;
      o.on_stdin_timeout = [sentinel](size_t) {};
      sentinel.reset();
      auto p = Process::start(loop, std::move(o), [&](ProcessResult) { called = true; });
      pid = p->pid();
      REQUIRE(pid > 0);
      p.reset();
      CHECK_FALSE(watch.expired()); // held until the child is reaped
      if (row.run_loop) {
        loop.run();
        CHECK(watch.expired());
      }
    }
    CHECK(watch.expired());
    CHECK_FALSE(called);
    if (row.detached) CHECK(::kill(pid, 0) == 0); // left running, as detached children are
    if (!row.run_loop) {
      ::kill(-pid, SIGKILL); // the loop is gone: reap the child here
      ::waitpid(pid, nullptr, 0);
    }
  }
}
