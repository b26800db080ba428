// Tests for src/http/client.cpp (tag [http]): how a call ends against peers that misbehave on
// loopback, each row giving the kind and the exact text of the failure. The kind is what the
// dispatcher and the pairing requester decide by; the text is what operators read where no
// table rewords it ("Pairing failed: read timeout"), so both are pinned here.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <functional>
#include <string>

#include "event/tcp.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "test/unit/event/await.hpp"
#include "tls/tls.hpp"

using namespace cx;

namespace {

// What the peer does with each connection.
enum class Peer {
  silent,              // accepts, reads, never writes
  close_at_once,       // closes as soon as it accepts
  close_after_request, // reads the request, then closes without a word
  reset_after_request, // reads the request, then resets the connection
  partial_response,    // sends half of a response, then closes
  garbage,             // answers the first bytes with a line that is not HTTP, then closes
  answer,              // a complete 200 response
};

// A plain TCP peer on loopback (it never speaks TLS, so a TLS client fails against it).
struct TestPeer {
  event::TcpListener listener;
  Peer behaviour;
  std::vector<std::unique_ptr<event::TcpStream>> conns;

  TestPeer(event::Loop& loop, Peer b) : listener(loop), behaviour(b) {
    REQUIRE(listener.listen("127.0.0.1", 0, 16, [this] { accept(); }).ok());
  }
  int port() const { return listener.local_port(); }

  void accept() {
    auto s = listener.accept();
    REQUIRE(s.ok());
    conns.push_back(std::move(*s));
    event::TcpStream* c = conns.back().get();
    if (behaviour == Peer::close_at_once) {
      c->close();
      return;
    }
    c->read_start([this, c](std::string_view) { on_request(c); }, [](int) {});
  }

  void on_request(event::TcpStream* c) {
    switch (behaviour) {
    case Peer::silent:
    case Peer::close_at_once:
      return;
    case Peer::close_after_request:
      c->end();
      return;
    case Peer::reset_after_request: {
      // SO_LINGER with a zero timeout: close() sends a reset instead of a FIN.
      uv_os_fd_t fd;
      REQUIRE(uv_fileno(reinterpret_cast<uv_handle_t*>(c->handle()), &fd) == 0);
      linger l{1, 0};
      REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
      c->close();
      return;
    }
    case Peer::partial_response:
      c->write("HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc");
      c->end();
      return;
    case Peer::garbage:
      c->write("SSH-2.0-OpenSSH_9.6\r\n\r\n");
      c->end();
      return;
    case Peer::answer:
      c->write(http::format_response(200, "{}"));
      c->end();
      return;
    }
  }
};

// A port that nothing listens on: bound, read, closed.
int closed_port(event::Loop& loop) {
  event::TcpListener probe(loop);
  REQUIRE(probe.listen("127.0.0.1", 0, 1, [] {}).ok());
  return probe.local_port();
}

std::shared_ptr<tls::Config> anonymous_tls_client() {
  auto creds = tls::Credentials::from_pem("", "", "");
  REQUIRE(creds.ok());
  auto cfg = tls::Config::client(*creds, tls::PeerCheck::none);
  REQUIRE(cfg.ok());
  return *cfg;
}

http::ClientResult call(event::Loop& loop, http::ClientOptions o) {
  return test::await<http::ClientResult>(loop, [&](auto deliver) {
    return http::ClientCall::start(loop, std::move(o),
                                   http::format_request("POST", "/ping", "agent", "{}"), deliver);
  });
}

} // namespace

TEST_CASE("client: every way a call fails has its kind and its exact text", "[http]") {
  struct Row {
    Peer peer;
    bool tls;
    std::function<void(http::ClientOptions&)> tune;
    ErrorKind kind;
    std::string message; // exact, or the start of it when `prefix`
    bool prefix = false;
  };
  auto quick_read = [](http::ClientOptions& o) { o.read_timeout_ms = 100; };
  auto quick_total = [](http::ClientOptions& o) {
    o.read_timeout_ms = 10000;
    o.total_timeout_ms = 150;
  };
  auto quick_connect = [](http::ClientOptions& o) { o.connect_timeout_ms = 150; };
  auto none = [](http::ClientOptions&) {};
  const std::string closed = "connection closed before a complete response";
  const Row rows[] = {
      // Silence: waiting for the answer, the whole call, the TLS handshake (which the connect
      // deadline covers).
      {Peer::silent, false, quick_read, ErrorKind::read_timeout, "read timeout"},
      {Peer::silent, false, quick_total, ErrorKind::timeout,
       "timed out: no complete response within 1s"},
      {Peer::silent, true, quick_connect, ErrorKind::timeout, "connection timed out"},
      // A peer that hangs up during the handshake (an agent over its cap), and one that does not
      // speak TLS.
      {Peer::close_at_once, true, none, ErrorKind::tls_closed,
       "TLS handshake failed: connection closed by peer"},
      {Peer::garbage, true, none, ErrorKind::tls, "TLS handshake failed: ", true},
      // A peer that hangs up, before or during its answer, or resets the connection.
      {Peer::close_after_request, false, none, ErrorKind::closed, closed},
      {Peer::partial_response, false, none, ErrorKind::closed, closed},
      {Peer::reset_after_request, false, none, ErrorKind::io, "connection reset by peer"},
      // An answer that is not HTTP; an answer.
      {Peer::garbage, false, none, ErrorKind::protocol, "malformed status line"},
      {Peer::answer, false, none, ErrorKind::none, ""},
  };
  for (const auto& r : rows) {
    INFO("peer " << static_cast<int>(r.peer) << (r.tls ? " over TLS" : ""));
    event::Loop loop;
    TestPeer peer(loop, r.peer);
    http::ClientOptions o;
    o.host = "127.0.0.1";
    o.port = peer.port();
    if (r.tls) o.tls = anonymous_tls_client();
    r.tune(o);
    http::ClientResult res = call(loop, std::move(o));
    INFO(res.status.message());
    CHECK(kind_name(res.status.kind()) == kind_name(r.kind));
    if (r.prefix)
      CHECK(res.status.message().rfind(r.message, 0) == 0);
    else
      CHECK(res.status.message() == r.message);
    CHECK(res.responses.size() == (r.kind == ErrorKind::none ? 1u : 0u));
  }
}

TEST_CASE("client: connecting fails with the connector's kind and text", "[http]") {
  event::Loop loop;
  http::ClientOptions refused;
  refused.host = "127.0.0.1";
  refused.port = closed_port(loop);
  auto r = call(loop, std::move(refused));
  CHECK(r.status.kind() == ErrorKind::refused);
  CHECK(r.status.message() == "connection refused");

  http::ClientOptions unresolved;
  unresolved.host = "no-such-host.invalid";
  unresolved.port = 7443;
  auto u = call(loop, std::move(unresolved));
  CHECK(u.status.kind() == ErrorKind::dns);
  CHECK(u.status.message().rfind("cannot resolve host 'no-such-host.invalid': ", 0) == 0);
}
