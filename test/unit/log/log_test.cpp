// Tests for src/log/log.cpp: line format, token scrubbing, sink choice and the sinks.
#include <catch2/catch.hpp>

#include <syslog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/files.hpp"
#include "log/log.hpp"

using namespace cx;

TEST_CASE("format_line: ACTION first, keys sorted, whitespace quoted, tokens dropped", "[log]") {
  struct Row {
    const char* action;
    log::Fields fields;
    const char* line;
  };
  const Row rows[] = {
      {"api-stop", {}, "ACTION=api-stop"},
      {"run",
       {{"TARGET", "db-01:7443"},
        {"SCRIPT", "backup"},
        {"RTT", "1203ms"},
        {"REQID", "a1b2c3d4e5f60001"},
        {"EXIT", "0"}},
       "ACTION=run EXIT=0 REQID=a1b2c3d4e5f60001 RTT=1203ms SCRIPT=backup TARGET=db-01:7443"},
      {"deny", {{"REASON", "not allowed"}}, "ACTION=deny REASON=\"not allowed\""},
      // Control characters become '?' everywhere, before the quoting test: a value cannot
      // forge a second line on any sink (issue 13).
      {"x", {{"MSG", "tab\there"}}, "ACTION=x MSG=tab?here"},
      {"x", {{"ERROR", "line1\nline2"}}, "ACTION=x ERROR=line1?line2"},
      {"api-run",
       {{"USER", "eve\nACTION=run SCRIPT=x"}, {"K\r", "v\x7f"}},
       "ACTION=api-run K?=v? USER=\"eve?ACTION=run SCRIPT=x\""},
      {"x\n", {{"A", std::string("nul\0esc\x1b", 8)}}, "ACTION=x? A=nul?esc?"},
      // Embedded quotes are not escaped, even inside a quoted value.
      {"x", {{"Q", "say \"hi\""}, {"R", "a\"b"}}, "ACTION=x Q=\"say \"hi\"\" R=a\"b"},
      {"x", {{"EMPTY", ""}, {"A", "1"}}, "ACTION=x A=1 EMPTY="},
      // ASCII order: upper case before '_' before lower case.
      {"x",
       {{"b", "1"}, {"_", "2"}, {"B", "3"}, {"AB", "4"}, {"A_", "5"}},
       "ACTION=x AB=4 A_=5 B=3 _=2 b=1"},
      {"auth",
       {{"TOKEN", "s3cret"}, {"token", "s3cret"}, {"Token", "x"}, {"USER", "ops"}},
       "ACTION=auth USER=ops"},
      {"x", {{"TOKENS", "kept"}, {"MY_TOKEN", "kept"}}, "ACTION=x MY_TOKEN=kept TOKENS=kept"},
      {"x", {{"ACTION", "spoof"}, {"K", "v"}}, "ACTION=x K=v"},
      {"x", {{"K", "first"}, {"K", "last"}}, "ACTION=x K=last"},
  };
  for (const auto& r : rows)
    CHECK(log::format_line(r.action, r.fields) == r.line);
}

TEST_CASE("levels map to syslog priorities", "[log]") {
  CHECK(log::syslog_priority(log::Level::info) == LOG_INFO);
  CHECK(log::syslog_priority(log::Level::warning) == LOG_WARNING);
  CHECK(log::syslog_priority(log::Level::err) == LOG_ERR);
  CHECK(LOG_INFO == 6);
  CHECK(LOG_WARNING == 4);
  CHECK(LOG_ERR == 3);
}

TEST_CASE("sink choice from CTRL_EXEC_LOG and /dev/log", "[log]") {
  struct Row {
    const char* env;
    bool dev_log;
    log::Sink sink;
  };
  const Row rows[] = {
      {"syslog", false, log::Sink::syslog},
      {"syslog", true, log::Sink::syslog},
      {"stderr", true, log::Sink::stderr_stream},
      {"stderr", false, log::Sink::stderr_stream},
      {nullptr, true, log::Sink::syslog},
      {nullptr, false, log::Sink::stderr_stream},
      {"", true, log::Sink::syslog},
      {"bogus", false, log::Sink::stderr_stream},
  };
  for (const auto& r : rows) {
    INFO((r.env ? r.env : "(unset)") << " dev_log=" << r.dev_log);
    CHECK(log::choose_sink(r.env, r.dev_log) == r.sink);
  }
}

TEST_CASE("the capture sink records level and line", "[log]") {
  log::init("ctrl-exec-test", log::Sink::capture);
  log::info("start", {{"PORT", "7443"}});
  log::warning("rate-block", {{"PEER", "10.0.0.1"}, {"REASON", "volume"}});
  log::err("rotate-fail", {{"ERROR", "disk full"}, {"DISPATCHER", "d1"}});
  auto recs = log::captured();
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].level == log::Level::info);
  CHECK(recs[0].line == "ACTION=start PORT=7443");
  CHECK(recs[1].level == log::Level::warning);
  CHECK(recs[1].line == "ACTION=rate-block PEER=10.0.0.1 REASON=volume");
  CHECK(recs[2].level == log::Level::err);
  CHECK(recs[2].line == "ACTION=rotate-fail DISPATCHER=d1 ERROR=\"disk full\"");
  log::clear_captured();
  CHECK(log::captured().empty());
  log::shutdown();
}

namespace {
// Runs `fn` with stderr pointed at a temp file and returns what was written.
template <typename F> std::string capture_stderr(F&& fn) {
  char path[] = "/tmp/cx-log-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  fn();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  auto text = read_file(path);
  ::unlink(path);
  REQUIRE(text.ok());
  return *text;
}
} // namespace

TEST_CASE("stderr sink and the fallback before init write `<ident>: <msg>`", "[log]") {
  log::shutdown();
  std::string before = capture_stderr([] { log::info("early", {{"K", "v"}}); });
  CHECK(before.find(": ACTION=early K=v\n") != std::string::npos);

  log::init("ctrl-exec-agent", log::Sink::stderr_stream);
  std::string out = capture_stderr([] {
    log::warning("tls-failure", {{"PEER", "10.1.1.1"}, {"REASON", "no cert"}});
    log::info("ping", {{"TOKEN", "never"}});
  });
  CHECK(out == "ctrl-exec-agent: ACTION=tls-failure PEER=10.1.1.1 REASON=\"no cert\"\n"
               "ctrl-exec-agent: ACTION=ping\n");
  log::shutdown();
  // After shutdown the ident stays and lines go to stderr again.
  std::string after = capture_stderr([] { log::info("late"); });
  CHECK(after == "ctrl-exec-agent: ACTION=late\n");
}

TEST_CASE("init(ident) honours CTRL_EXEC_LOG=stderr", "[log]") {
  const char* old = std::getenv("CTRL_EXEC_LOG");
  std::string saved = old ? old : "";
  ::setenv("CTRL_EXEC_LOG", "stderr", 1);
  log::init("ctrl-exec-api");
  std::string out = capture_stderr([] { log::info("api-start", {{"PORT", "7445"}}); });
  CHECK(out == "ctrl-exec-api: ACTION=api-start PORT=7445\n");
  log::shutdown();
  if (old)
    ::setenv("CTRL_EXEC_LOG", saved.c_str(), 1);
  else
    ::unsetenv("CTRL_EXEC_LOG");
}
