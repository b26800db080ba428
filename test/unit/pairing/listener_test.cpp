// Tests for src/pairing/listener.cpp and mode.cpp (tag [pairing]): the 7444 exchange over real
// loopback TLS in one process: refusals, queueing, both responses, the answer timeout and
// stopping; the pairing-mode timeout choice.
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
#include "pki/ca.hpp"
#include "pki/ca_store.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "proto/pairing_wire.hpp"
#include "state/registry.hpp"
#include "testutil.hpp"

#include "fixture.hpp"

using namespace cx;
using namespace cx::pairing;
using namespace cx::pairing::test_fixture;

namespace {

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
  DispatcherPki p(tmp.path());
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
    Listener l(loop, listener_options(tmp));
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
  DispatcherPki p(tmp.path());
  log::init("test", log::Sink::capture);
  std::string printed;
  event::Loop loop;
  Listener l(loop, listener_options(tmp, &printed));
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
  DispatcherPki p(tmp.path());
  log::init("test", log::Sink::capture);
  SECTION("no answer within the wait: approval timeout, request removed") {
    event::Loop loop;
    auto o = listener_options(tmp);
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
    auto o = listener_options(tmp);
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
    auto o = listener_options(tmp);
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
  DispatcherPki p(tmp.path());
  event::Loop loop;
  Listener first(loop, listener_options(tmp));
  REQUIRE(first.start().ok());
  auto o = listener_options(tmp);
  o.port = first.port();
  Listener second(loop, o);
  auto st = second.start();
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind("Cannot start pairing server: ", 0) == 0);
  auto missing = listener_options(tmp);
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
