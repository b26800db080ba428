// Tests for src/pairing/listener.cpp and requester.cpp (tag [pairing]): the 7444 exchange over
// real loopback TLS in one process: refusals, queueing, both responses, the answer timeout,
// stopping, and request_pairing's background exit codes 0/2/3 against a listener thread.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/files.hpp"
#include "base/time.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "log/log.hpp"
#include "pairing/approve.hpp"
#include "pairing/listener.hpp"
#include "pairing/mode.hpp"
#include "pairing/requester.hpp"
#include "pki/ca.hpp"
#include "pki/ca_store.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "proto/pairing_wire.hpp"
#include "state/registry.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::pairing;

namespace {

// A CA and a dispatcher cert in `dir`, made with our own pki (EC keys are fast).
struct Pki {
  std::string dir, ca_key, ca_cert, cert, key;
  explicit Pki(const std::string& d) : dir(d) {
    ca_key = *pki::generate_key();
    ca_cert = *pki::create_ca_cert(ca_key);
    key = *pki::generate_key();
    pki::IssueOptions o;
    o.serial = pki::new_serial();
    cert = *pki::sign_csr(*pki::create_csr(key, "ctrl-exec-dispatcher"), ca_cert, ca_key, o);
    REQUIRE(write_file_atomic(dir + "/ca.key", ca_key).ok());
    REQUIRE(write_file_atomic(dir + "/ca.crt", ca_cert).ok());
    REQUIRE(write_file_atomic(dir + "/dispatcher.key", key).ok());
    REQUIRE(write_file_atomic(dir + "/dispatcher.crt", cert).ok());
  }
};

ListenerOptions options(const test::TempDir& tmp, std::string* out = nullptr) {
  ListenerOptions o;
  o.bind_ip = "127.0.0.1";
  o.port = 0;
  o.timeout_s = 60;
  o.cert_path = tmp / "dispatcher.crt";
  o.key_path = tmp / "dispatcher.key";
  o.queue_dir = tmp / "pairing";
  o.read_stdin = false;
  o.poll_ms = 20;
  o.reverse_dns_timeout_ms = 200;
  o.rate.disabled = true;
  o.output = [out](const std::string& s) {
    if (out) *out += s;
  };
  return o;
}

std::string request_body(const std::string& hostname = "web-01", const std::string& nonce = "n1") {
  static const std::string csr = *pki::create_csr(*pki::generate_key(), "web-01");
  proto::PairRequest r;
  r.hostname = hostname;
  r.csr = csr;
  r.nonce = nonce;
  r.port = 7450;
  return proto::pair_request_json(r);
}

// One pairing call: the responses it got (bodies), or the transport error.
struct Call {
  std::vector<std::string> bodies;
  std::string error;
  std::unique_ptr<http::ClientCall> call;
};

std::shared_ptr<Call> call_listener(event::Loop& loop, int port, const std::string& raw_request,
                                    std::function<void(Call&)> done,
                                    std::function<void(const std::string&)> on_first = {}) {
  auto c = std::make_shared<Call>();
  auto creds = tls::Credentials::from_pem("", "", "");
  auto cfg = tls::Config::client(*creds, tls::PeerCheck::none);
  http::ClientOptions co;
  co.host = "127.0.0.1";
  co.port = port;
  co.tls = *cfg;
  co.responses = 2;
  co.read_timeout_ms = 10000;
  std::weak_ptr<Call> weak = c;
  c->call = http::ClientCall::start(
      loop, std::move(co), raw_request,
      [weak, done](http::ClientResult r) {
        auto self = weak.lock();
        if (!self) return;
        self->bodies.clear();
        for (auto& resp : r.responses)
          self->bodies.push_back(resp.body);
        if (!r.status.ok()) self->error = r.status.message();
        done(*self);
      },
      // The client copies this callback before each call, so the count lives outside it.
      [on_first, n = std::make_shared<int>(0)](const http::Response& resp) {
        if (++*n == 1 && on_first) on_first(resp.body);
      });
  return c;
}

std::string pair_post(const std::string& body) {
  return http::format_http10_request("POST", "/pair", body);
}

size_t log_count(const std::string& needle) {
  size_t n = 0;
  for (const auto& r : log::captured())
    if (r.line.find(needle) != std::string::npos) ++n;
  return n;
}

} // namespace

TEST_CASE("listener: refusals get one error response and nothing is queued", "[pairing]") {
  test::TempDir tmp;
  Pki p(tmp.path());
  log::init("test", log::Sink::capture);
  struct Row {
    std::string request;
    std::string body;   // the single response
    const char* logged; // a pair-reject REASON, or nullptr
  };
  const Row rows[] = {
      {pair_post("{\"hostname\":\"web\"}"), R"({"status":"error","reason":"invalid request"})",
       nullptr},
      {pair_post("not json"), R"({"status":"error","reason":"invalid request"})", nullptr},
      {pair_post(request_body("../etc")), R"({"status":"error","reason":"invalid hostname"})",
       "REASON=invalid-hostname"},
      {"POST /pair HTTP/1.0\r\nContent-Length: 65537\r\n\r\n",
       R"({"status":"error","reason":"request too large"})", "REASON=body-too-large"},
      {"POST /pair HTTP/1.0\r\nContent-Length: 200000000\r\n\r\n",
       R"({"status":"error","reason":"request too large"})", "REASON=body-too-large"},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    log::clear_captured();
    event::Loop loop;
    Listener l(loop, options(tmp));
    l.on_stopped = [&](StopReason) { loop.stop(); };
    REQUIRE(l.start().ok());
    auto c = call_listener(loop, l.port(), row.request, [&](Call&) { l.stop(StopReason::quit); });
    loop.run();
    REQUIRE(c->bodies.size() == 1);
    CHECK(c->bodies[0] == row.body);
    if (row.logged)
      CHECK(log_count(std::string("ACTION=pair-reject IP=127.0.0.1 ") + row.logged) == 1);
    CHECK(state::PairingQueue(tmp / "pairing").pending_count() == 0);
  }
  log::shutdown();
}

TEST_CASE("listener: queue, pending, then the approved answer on the same connection",
          "[pairing]") {
  test::TempDir tmp;
  Pki p(tmp.path());
  log::init("test", log::Sink::capture);
  std::string printed;
  event::Loop loop;
  Listener l(loop, options(tmp, &printed));
  l.on_stopped = [&](StopReason) { loop.stop(); };
  REQUIRE(l.start().ok());
  state::PairingQueue q(tmp / "pairing");
  std::string reqid;
  auto c = call_listener(
      loop, l.port(), pair_post(request_body()), [&](Call&) { l.stop(StopReason::quit); },
      [&](const std::string& first) {
        auto r = proto::parse_pair_response(first);
        REQUIRE(r.ok());
        reqid = r->reqid;
        // The queue file is there, with the code of the CSR, before the first response.
        auto queued = q.get(reqid);
        REQUIRE(queued);
        CHECK(queued->hostname == "web-01");
        CHECK(queued->source_ip == "127.0.0.1");
        CHECK(queued->ip == "127.0.0.1");
        CHECK(queued->port == 7450);
        CHECK(queued->nonce == "n1");
        CHECK(queued->code == pki::pairing_code(queued->csr));
        REQUIRE(q.write_approved(reqid, R"({"status":"approved","nonce":"n1"})").ok());
      });
  loop.run();
  REQUIRE(c->bodies.size() == 2);
  CHECK(c->bodies[0] == R"({"status":"pending","reqid":")" + reqid + "\"}");
  CHECK(reqid.size() == 16);
  CHECK(c->bodies[1] == R"({"status":"approved","nonce":"n1"})");
  // Delivered: the answer and the request are gone.
  CHECK_FALSE(path_exists(q.request_path(reqid)));
  CHECK_FALSE(path_exists(q.approved_path(reqid)));
  CHECK(printed.find("Pairing request queued: web-01 (127.0.0.1) - ID: " + reqid + "\n") !=
        std::string::npos);
  CHECK(log_count("ACTION=pair-request AGENT=web-01 IP=127.0.0.1 REQID=" + reqid +
                  " STATUS=pending") == 1);
  log::shutdown();
}

TEST_CASE("listener: the answer timeout, a full queue and stopping", "[pairing]") {
  test::TempDir tmp;
  Pki p(tmp.path());
  log::init("test", log::Sink::capture);
  SECTION("no answer within the wait: approval timeout, request removed") {
    event::Loop loop;
    auto o = options(tmp);
    o.answer_timeout_ms = 100;
    Listener l(loop, o);
    l.on_stopped = [&](StopReason) { loop.stop(); };
    REQUIRE(l.start().ok());
    auto c = call_listener(loop, l.port(), pair_post(request_body()),
                           [&](Call&) { l.stop(StopReason::quit); });
    loop.run();
    REQUIRE(c->bodies.size() == 2);
    CHECK(c->bodies[1] == R"({"status":"denied","reason":"approval timeout"})");
    CHECK(state::PairingQueue(tmp / "pairing").pending_count() == 0);
  }
  SECTION("the queue at its limit refuses, one below accepts") {
    event::Loop loop;
    auto o = options(tmp);
    o.max_queue = 2;
    Listener l(loop, o);
    l.on_stopped = [&](StopReason) { loop.stop(); };
    REQUIRE(l.start().ok());
    state::PairingQueue q(tmp / "pairing");
    state::PairingRequest old;
    old.id = "aaaa";
    old.hostname = "old";
    REQUIRE(q.add(old).ok());
    std::shared_ptr<Call> second;
    auto first = call_listener(
        loop, l.port(), pair_post(request_body()), [](Call&) {},
        [&](const std::string&) {
          // 2 of 2 now: the next one is refused.
          second = call_listener(loop, l.port(), pair_post(request_body()),
                                 [&](Call&) { l.stop(StopReason::quit); });
        });
    loop.run();
    REQUIRE(second);
    REQUIRE(second->bodies.size() == 1);
    CHECK(second->bodies[0] == R"({"status":"error","reason":"pairing queue full"})");
    CHECK(log_count("ACTION=pair-reject IP=127.0.0.1 REASON=queue-full") == 1);
    // Stopping answered the waiting one and withdrew its request.
    REQUIRE(first->bodies.size() == 2);
    CHECK(first->bodies[1] == R"({"status":"denied","reason":"pairing mode stopped"})");
    CHECK(q.pending_count() == 1); // only the pre-existing one
  }
  SECTION("the pairing-mode timeout stops the listener") {
    event::Loop loop;
    auto o = options(tmp);
    o.timeout_s = 1;
    std::string printed;
    o.output = [&](const std::string& s) { printed += s; };
    Listener l(loop, o);
    std::optional<StopReason> why;
    l.on_stopped = [&](StopReason r) {
      why = r;
      loop.stop();
    };
    uint64_t t0 = monotonic_ms();
    REQUIRE(l.start().ok());
    loop.run();
    CHECK(why == StopReason::timeout);
    CHECK(monotonic_ms() - t0 < 5000);
    CHECK(printed.find("\nPairing mode timed out after 1s. Stopped.\n") != std::string::npos);
    CHECK(log_count("ACTION=pairing-mode-timeout PORT=" + std::to_string(l.port())) == 1);
  }
  log::shutdown();
}

TEST_CASE("listener: a port in use is a clear startup error", "[pairing]") {
  test::TempDir tmp;
  Pki p(tmp.path());
  event::Loop loop;
  Listener first(loop, options(tmp));
  REQUIRE(first.start().ok());
  auto o = options(tmp);
  o.port = first.port();
  Listener second(loop, o);
  auto st = second.start();
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind("Cannot start pairing server: ", 0) == 0);
  auto missing = options(tmp);
  missing.cert_path = tmp / "nope.crt";
  Listener third(loop, missing);
  CHECK(third.start().message().find("nope.crt") != std::string::npos);
}

TEST_CASE("pairing-mode timeout choice (acceptance row 26)", "[pairing]") {
  struct Row {
    std::optional<int> flag;
    const char* config; // pairing_timeout text, or nullptr
    int64_t seconds;
    const char* error;
  };
  const Row rows[] = {
      {std::nullopt, nullptr, 600, ""},
      {std::nullopt, "120", 120, ""},
      {30, "120", 30, ""}, // the flag beats the config
      {1, nullptr, 1, ""},
      {600, nullptr, 600, ""},
      {601, nullptr, 601, "Error: --timeout must be between 1 and 600 seconds."},
      {0, nullptr, 0, "Error: --timeout must be between 1 and 600 seconds."},
      {std::nullopt, "0", 0, "Error: --timeout must be between 1 and 600 seconds."},
      {std::nullopt, "ten", 600, "Error: --timeout must be an integer number of seconds."},
  };
  for (const auto& r : rows) {
    INFO((r.flag ? std::to_string(*r.flag) : "-") << " / " << (r.config ? r.config : "-"));
    conf::FlatConfig raw{{"cert", "c"}, {"key", "k"}, {"ca", "a"}};
    if (r.config) raw["pairing_timeout"] = r.config;
    auto config = conf::make_dispatcher_config(raw, "host").config;
    auto c = choose_pairing_timeout(r.flag, config);
    CHECK(c.error == r.error);
    if (c.error.empty()) CHECK(c.seconds == r.seconds);
  }
}

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
    Listener l(loop, options(tmp_));
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
          "[pairing]") {
  test::TempDir disp;
  Pki p(disp.path());
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
