// Tests for src/log/log.cpp: line format, token scrubbing, sink choice and the sinks.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

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
      {nullptr, false, log::Sink::syslog_when_ready},
      {"", true, log::Sink::syslog},
      {"bogus", false, log::Sink::syslog_when_ready},
      {"bogus", true, log::Sink::syslog},
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

namespace {

// A stand-in syslog daemon: a datagram socket bound at a temp path (none until listen()).
class FakeDaemon {
public:
  FakeDaemon() {
    char dir[] = "/tmp/cx-syslog-XXXXXX";
    REQUIRE(::mkdtemp(dir) != nullptr);
    dir_ = dir;
    path_ = dir_ + "/log";
  }
  ~FakeDaemon() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

  void listen() {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    REQUIRE(fd_ >= 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0);
    struct timeval tv {
      5, 0
    };
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // Stops answering: the socket is closed and its path removed.
  void stop() {
    ::close(fd_);
    fd_ = -1;
    ::unlink(path_.c_str());
  }

  // The next datagram, or "" after 5 s.
  std::string receive() {
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  // Whether a datagram is waiting, without waiting for one.
  bool idle() {
    char c;
    return ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0;
  }

private:
  std::string dir_, path_;
  int fd_ = -1;
};

// `<PRI>Mmm dd hh:mm:ss ident[pid]: msg` -> (PRI, "ident[pid]: msg").
std::pair<std::string, std::string> split_syslog(const std::string& datagram) {
  size_t close = datagram.find('>');
  if (datagram.empty() || datagram[0] != '<' || close == std::string::npos ||
      datagram.size() < close + 17)
    return {"", datagram};
  return {datagram.substr(1, close - 1), datagram.substr(close + 17)};
}

std::string tagged(const std::string& msg) {
  return "ctrl-exec-test[" + std::to_string(::getpid()) + "]: " + msg;
}

} // namespace

TEST_CASE("the syslog sink speaks the local protocol, facility daemon, ident and pid", "[log]") {
  FakeDaemon daemon;
  daemon.listen();
  log::SyslogOptions o;
  o.socket_path = daemon.path();
  log::init("ctrl-exec-test", log::Sink::syslog, o);
  std::string err = capture_stderr([] {
    log::info("start", {{"PORT", "7443"}});
    log::warning("rate-block", {{"PEER", "10.0.0.1"}});
    log::err("rotate-fail", {{"ERROR", "disk full"}});
  });
  CHECK(err.empty());
  const std::pair<std::string, std::string> want[] = {
      {"30", tagged("ACTION=start PORT=7443")},
      {"28", tagged("ACTION=rate-block PEER=10.0.0.1")},
      {"27", tagged("ACTION=rotate-fail ERROR=\"disk full\"")},
  };
  for (const auto& w : want)
    CHECK(split_syslog(daemon.receive()) == w);
  // A daemon that goes away: the line is not lost, it goes to stderr.
  daemon.stop();
  err = capture_stderr([] { log::info("late"); });
  CHECK(err == "ctrl-exec-test: ACTION=late\n");
  log::shutdown();
}

TEST_CASE("syslog_when_ready: lines go to stderr, then all reach syslog once it appears", "[log]") {
  FakeDaemon daemon;
  log::SyslogOptions o;
  o.socket_path = daemon.path();
  o.poll_ms = 10;
  log::init("ctrl-exec-test", log::Sink::syslog_when_ready, o);
  CHECK(log::current_sink() == log::Sink::syslog_when_ready);
  // Before the socket exists: stderr at once, and held for syslog.
  std::string err = capture_stderr([] {
    log::info("start", {{"PORT", "7443"}});
    log::warning("config-warn", {{"KEY", "k"}});
  });
  CHECK(err == "ctrl-exec-test: ACTION=start PORT=7443\n"
               "ctrl-exec-test: ACTION=config-warn KEY=k\n");
  // The daemon comes up; nothing more is logged, yet the held lines arrive, in order.
  daemon.listen();
  CHECK(split_syslog(daemon.receive()) ==
        std::make_pair(std::string("30"), tagged("ACTION=start PORT=7443")));
  CHECK(split_syslog(daemon.receive()) ==
        std::make_pair(std::string("28"), tagged("ACTION=config-warn KEY=k")));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (log::current_sink() != log::Sink::syslog && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(log::current_sink() == log::Sink::syslog);
  // From the switch on, syslog only.
  err = capture_stderr([] { log::info("ping", {{"REQID", "r1"}}); });
  CHECK(err.empty());
  CHECK(split_syslog(daemon.receive()).second == tagged("ACTION=ping REQID=r1"));
  CHECK(daemon.idle());
  log::shutdown();
}

TEST_CASE("syslog_when_ready holds at most kMaxHeldLines, the first ones", "[log]") {
  FakeDaemon daemon;
  log::SyslogOptions o;
  o.socket_path = daemon.path();
  o.poll_ms = 10;
  log::init("ctrl-exec-test", log::Sink::syslog_when_ready, o);
  const size_t total = log::kMaxHeldLines + 44;
  std::string err = capture_stderr([&] {
    for (size_t i = 0; i < total; ++i)
      log::info("n", {{"I", std::to_string(i)}});
  });
  CHECK(std::count(err.begin(), err.end(), '\n') == static_cast<long>(total));
  daemon.listen();
  for (size_t i = 0; i < log::kMaxHeldLines; ++i)
    REQUIRE(split_syslog(daemon.receive()).second == tagged("ACTION=n I=" + std::to_string(i)));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(daemon.idle());
  log::shutdown();
}

TEST_CASE("syslog_when_ready after the hold: the line that finds the socket goes there", "[log]") {
  FakeDaemon daemon;
  log::SyslogOptions o;
  o.socket_path = daemon.path();
  o.hold_ms = 0; // no hold: nothing is kept for later
  o.recheck_ms = 0;
  log::init("ctrl-exec-test", log::Sink::syslog_when_ready, o);
  std::string err = capture_stderr([] { log::info("before"); });
  CHECK(err == "ctrl-exec-test: ACTION=before\n");
  daemon.listen();
  err = capture_stderr([] { log::info("after"); });
  CHECK(err.empty());
  CHECK(split_syslog(daemon.receive()).second == tagged("ACTION=after"));
  CHECK(daemon.idle());
  CHECK(log::current_sink() == log::Sink::syslog);
  log::shutdown();
}

TEST_CASE("syslog_when_ready looks for the socket at most once per recheck_ms", "[log]") {
  FakeDaemon daemon;
  log::SyslogOptions o;
  o.socket_path = daemon.path();
  o.hold_ms = 0;
  o.recheck_ms = 60000;
  log::init("ctrl-exec-test", log::Sink::syslog_when_ready, o);
  daemon.listen();
  // init looked a moment ago; the next look is a minute away, so this line stays on stderr.
  std::string err = capture_stderr([] { log::info("soon"); });
  CHECK(err == "ctrl-exec-test: ACTION=soon\n");
  CHECK(daemon.idle());
  log::shutdown();
}
