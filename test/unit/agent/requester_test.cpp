// Tests for src/agent/requester.cpp (tag [agent]): request_pairing's background exit codes
// 0/2/3 and what it stores, against a real pairing listener on a thread (loopback TLS).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "agent/requester.hpp"
#include "base/files.hpp"
#include "base/time.hpp"
#include "pairing/approve.hpp"
#include "pairing/listener.hpp"
#include "pki/cert.hpp"
#include "pki/serial.hpp"
#include "state/pairing_queue.hpp"
#include "state/registry.hpp"
#include "testutil.hpp"

#include "../pairing/fixture.hpp"

using namespace cx;
using namespace cx::agent;
using cx::pairing::ApproveContext;
using cx::pairing::Listener;
using cx::pairing::StopReason;
using namespace cx::pairing::test_fixture;

namespace {

// A listener on its own thread (request_pairing runs its own loop on the test's thread), with
// an operator that answers every queued request as told.
class ListenerThread {
public:
  enum class Operator { none, approve, deny };
  ListenerThread(const test::TempDir& tmp, Operator op) : tmp_(tmp), op_(op) {
    thread_ = std::thread([this] { run(); });
    while (port_.load() == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~ListenerThread() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_.load(); }

private:
  void run() {
    event::Loop loop;
    Listener l(loop, listener_options(tmp_));
    l.on_stopped = [&](StopReason) { loop.stop(); };
    REQUIRE(l.start().ok());
    event::Timer tick(loop);
    tick.start(
        20,
        [&] {
          if (stop_) {
            l.stop(StopReason::quit);
            return;
          }
          if (op_ == Operator::none) return;
          ApproveContext ctx;
          ctx.ca_dir = tmp_.path();
          ctx.cert_path = tmp_ / "dispatcher.crt";
          ctx.dispatcher_id = "disp-b";
          ctx.queue_dir = tmp_ / "pairing";
          ctx.registry_dir = tmp_ / "agents";
          for (const auto& r : state::PairingQueue(ctx.queue_dir).list(unix_now())) {
            if (path_exists(state::PairingQueue(ctx.queue_dir).approved_path(r.id))) continue;
            if (op_ == Operator::approve)
              CHECK(approve_request(ctx, r.id).ok());
            else
              CHECK(deny_request(ctx, r.id).ok());
          }
        },
        20);
    port_ = l.port();
    loop.run();
  }

  const test::TempDir& tmp_;
  Operator op_;
  std::atomic<int> port_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// request_pairing as the detached background half: the reqid arrives on a pipe.
struct BackgroundRun {
  int rc = -1;
  std::string handoff;
};

BackgroundRun run_background(const test::TempDir& agent, int port, int timeout) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::setenv("CTRL_EXEC_PAIRING_HANDOFF", std::to_string(fds[1]).c_str(), 1);
  RequestPairingOptions o;
  o.config_path = agent / "agent.conf";
  o.dispatcher = "127.0.0.1";
  o.port = port;
  o.background = true;
  o.timeout = timeout;
  o.lookup_by = "ip";
  BackgroundRun out;
  out.rc = request_pairing(o); // closes its end of the pipe once the reqid is sent
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    out.handoff.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::unsetenv("CTRL_EXEC_PAIRING_HANDOFF");
  return out;
}

void write_agent_conf(const test::TempDir& agent) {
  REQUIRE(write_file_atomic(agent / "agent.conf",
                            "port = 7460\n"
                            "cert = " +
                                agent / "etc/agent.crt\n" + "key = " + agent / "etc/agent.key\n" +
                                "ca = " + agent / "etc/ca.crt\n" +
                                "trusted_dispatchers_path = " + agent / "state/dispatchers\n")
              .ok());
}

} // namespace

TEST_CASE("request_pairing --background: exit 0 stores and appends, 2 on timeout, 3 on denial",
          "[agent]") {
  test::TempDir disp;
  DispatcherPki p(disp.path());
  test::TempDir agent;
  write_agent_conf(agent);
  // A map that already trusts another dispatcher: pairing must keep it.
  REQUIRE(make_dirs(agent / "state").ok());
  REQUIRE(write_file_atomic(agent / "state/dispatchers", "abc123 disp-a\n").ok());

  SECTION("approved") {
    ListenerThread l(disp, ListenerThread::Operator::approve);
    auto r = run_background(agent, l.port(), 30);
    CHECK(r.rc == 0);
    CHECK(r.handoff.size() == 17); // 16 hex and a newline
    std::string serial =
        pki::canon_serial(pki::cert_info(test::slurp(disp / "dispatcher.crt"))->serial);
    std::string map = test::slurp(agent / "state/dispatchers");
    CHECK(map.find("abc123 disp-a\n") != std::string::npos);
    CHECK(map.find(serial + " disp-b\n") != std::string::npos);
    CHECK(*pki::key_matches_cert(test::slurp(agent / "etc/agent.key"),
                                 test::slurp(agent / "etc/agent.crt")));
    CHECK(test::slurp(agent / "etc/ca.crt") == p.ca_cert);
    auto rec = state::Registry(disp / "agents").list();
    REQUIRE(rec.ok());
    REQUIRE(rec->size() == 1);
    CHECK((*rec)[0].port == 7460);
    CHECK((*rec)[0].lookup_by == "ip");
    CHECK((*rec)[0].ip == "127.0.0.1");
    CHECK((*rec)[0].dispatcher_serial == serial);
  }
  SECTION("no answer within --timeout") {
    ListenerThread l(disp, ListenerThread::Operator::none);
    uint64_t t0 = monotonic_ms();
    auto r = run_background(agent, l.port(), 1);
    CHECK(r.rc == 2);
    CHECK(monotonic_ms() - t0 < 5000);
    CHECK(r.handoff.size() == 17);
    CHECK_FALSE(path_exists(agent / "etc/agent.crt"));
  }
  SECTION("denied") {
    ListenerThread l(disp, ListenerThread::Operator::deny);
    auto r = run_background(agent, l.port(), 30);
    CHECK(r.rc == 3);
    CHECK_FALSE(path_exists(agent / "etc/agent.crt"));
    CHECK(test::slurp(agent / "state/dispatchers") == "abc123 disp-a\n");
  }
  SECTION("nothing listening: the failure goes to the waiting foreground") {
    auto r = run_background(agent, 1, 30);
    CHECK(r.rc == 255);
    CHECK(r.handoff.rfind("!Cannot connect to ctrl-exec at 127.0.0.1:1: connection refused", 0) ==
          0);
  }
}
