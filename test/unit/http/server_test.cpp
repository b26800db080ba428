// Tests for src/http/server.cpp and src/http/client.cpp over real loopback sockets.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <thread>

#include "base/time.hpp"
#include "event/tcp.hpp"
#include "http/client.hpp"
#include "http/server.hpp"
#include "test/unit/testutil.hpp"

using namespace cx;

namespace {

// A raw TCP client: sends `bytes` (in pieces, optionally), collects everything until EOF.
struct RawClient {
  event::Connector conn;
  std::unique_ptr<event::TcpStream> tcp;
  std::string got;
  bool eof = false;
  RawClient(event::Loop& loop, int port, std::string bytes, std::function<void()> on_eof = {})
      : conn(loop) {
    conn.connect("127.0.0.1", port, 2000,
                 [this, bytes, on_eof](Result<std::unique_ptr<event::TcpStream>> r) {
                   REQUIRE(r.ok());
                   tcp = std::move(*r);
                   tcp->read_start([this](std::string_view d) { got += d; },
                                   [this, on_eof](int) {
                                     eof = true;
                                     tcp->close();
                                     if (on_eof) on_eof();
                                   });
                   if (!bytes.empty()) tcp->write(bytes);
                 });
  }
};

// A blocking client on a thread of its own, from a chosen loopback source address, for the
// rows that depend on where a connection comes from. -1 when it cannot connect.
int connect_from(const char* source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything until EOF, a reset or 5 s of silence.
std::string read_to_end(int fd) {
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    got.append(buf, static_cast<size_t>(n));
  return got;
}

std::future<std::string> exchange_from(const char* source, int port, std::string request) {
  return std::async(std::launch::async, [source, port, request] {
    int fd = connect_from(source, port);
    if (fd < 0) return std::string("(connect failed)");
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string got = read_to_end(fd);
    ::close(fd);
    return got;
  });
}

// Runs the loop until `done` holds (checked on the loop's thread) or 5 s pass.
bool run_until(event::Loop& loop, const std::function<bool()>& done) {
  bool ok = false;
  uint64_t start = monotonic_ms();
  event::Timer poll(loop);
  poll.start(
      1,
      [&] {
        if (done()) {
          ok = true;
          loop.stop();
        } else if (monotonic_ms() - start > 5000) {
          loop.stop();
        }
      },
      2);
  loop.run();
  return ok;
}

template <typename T> bool ready(const std::future<T>& f) {
  return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

http::ServerOptions loopback_options() {
  http::ServerOptions o;
  o.bind_ip = "127.0.0.1";
  return o;
}

http::ClientOptions client_options(int port) {
  http::ClientOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  return o;
}

http::ServerHooks echo_hooks(event::Loop& loop) {
  http::ServerHooks h;
  h.request = [&loop](const std::shared_ptr<http::Connection>& c, http::Request& req) {
    // Answer from a later loop iteration, as a handler that runs a script would.
    auto t = std::make_shared<event::Timer>(loop);
    std::string body = "{\"method\":\"" + req.method + "\",\"path\":\"" + req.path +
                       "\",\"body\":\"" + req.body + "\"}";
    t->start(5, [c, t, body] { c->respond(200, body); });
  };
  h.bad_request = [](const std::shared_ptr<http::Connection>& c, const http::RequestParser& p) {
    c->respond(p.error_status(), "{\"error\":\"" + std::string(p.error_message()) + "\"}");
  };
  return h;
}

} // namespace

TEST_CASE("server answers with the original's framing and closes", "[http]") {
  event::Loop loop;
  http::Server server(loop, loopback_options(), echo_hooks(loop));
  REQUIRE(server.listen().ok());
  RawClient c(loop, server.port(),
              "POST /ping HTTP/1.1\r\nTE: deflate,gzip;q=0.3\r\nConnection: TE, close\r\nHost: "
              "x:7443\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}",
              [&] { server.stop_accepting(); });
  loop.run();
  CHECK(c.got == "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n"
                 "{\"method\":\"POST\",\"path\":\"/ping\",\"body\":\"{}\"}");
  CHECK(c.eof);
}

TEST_CASE("limits: 431, 413 and a malformed request line", "[http]") {
  struct Row {
    std::string request;
    std::string status_line;
  };
  std::string many;
  for (int i = 0; i < 33; ++i)
    many += "X-H" + std::to_string(i) + ": v\r\n";
  const Row rows[] = {
      {"GET / HTTP/1.0\r\n" + many + "\r\n", "HTTP/1.0 431 Request Header Fields Too Large"},
      {"POST /run HTTP/1.0\r\nContent-Length: 2000000\r\n\r\n", "HTTP/1.0 413 Content Too Large"},
      {"\x01\x02garbage\r\n\r\n", "HTTP/1.0 400 Bad Request"},
      {"", "HTTP/1.0 400 Bad Request"}, // EOF before any request: "empty request"
  };
  for (const auto& row : rows) {
    event::Loop loop;
    http::Server server(loop, loopback_options(), echo_hooks(loop));
    REQUIRE(server.listen().ok());
    std::unique_ptr<RawClient> c;
    c = std::make_unique<RawClient>(loop, server.port(), row.request,
                                    [&] { server.stop_accepting(); });
    if (row.request.empty()) {
      event::Timer t(loop);
      t.start(20, [&] { c->tcp->shutdown(); });
      loop.run();
    } else {
      loop.run();
    }
    INFO(c->got);
    CHECK(c->got.rfind(row.status_line + "\r\n", 0) == 0);
  }
}

TEST_CASE("keep-alive is honoured only when asked for", "[http]") {
  event::Loop loop;
  http::ServerOptions o = loopback_options();
  o.allow_keep_alive = true;
  http::Server server(loop, o, echo_hooks(loop));
  REQUIRE(server.listen().ok());
  // Two pipelined requests on one connection, then a plain one that closes it.
  std::string reqs = "GET /a HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
                     "GET /b HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"
                     "GET /c HTTP/1.1\r\n\r\n";
  RawClient c(loop, server.port(), reqs, [&] { server.stop_accepting(); });
  loop.run();
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = c.got.find(s); p != std::string::npos; p = c.got.find(s, p + 1))
      ++n;
    return n;
  };
  CHECK(count("HTTP/1.0 200 OK") == 3);
  CHECK(count("Connection: keep-alive") == 2);
  CHECK(c.got.find("\"path\":\"/c\"") != std::string::npos);
  CHECK(c.eof);
}

TEST_CASE("a stalled client is dropped and never blocks others", "[http]") {
  event::Loop loop;
  http::ServerOptions o = loopback_options();
  o.request_timeout_ms = 300;
  http::Server server(loop, o, echo_hooks(loop));
  REQUIRE(server.listen().ok());
  uint64_t start = monotonic_ms();
  RawClient stalled(loop, server.port(), "POST /run HTTP/1.0\r\nContent-Length: 10\r\n\r\n{\"a\"");
  std::unique_ptr<RawClient> good;
  uint64_t good_done = 0;
  event::Timer t(loop);
  t.start(50, [&] {
    good = std::make_unique<RawClient>(loop, server.port(), "GET /ok HTTP/1.0\r\n\r\n",
                                       [&] { good_done = monotonic_ms() - start; });
  });
  event::Timer stop(loop);
  stop.start(1500, [&] { server.stop_accepting(); });
  loop.run();
  CHECK(good->got.rfind("HTTP/1.0 200 OK", 0) == 0);
  CHECK(good_done < 300); // served while the stalled one was still waiting
  CHECK(stalled.eof);     // and the stalled one was dropped without an answer
  CHECK(stalled.got.empty());
}

TEST_CASE("head and body deadlines are totals, not per byte", "[http]") {
  struct Row {
    std::string first;    // sent at once
    std::string trickled; // then one byte every 40 ms
    uint64_t head_ms, body_ms;
    uint64_t dropped_after_min, dropped_after_max;
  };
  std::string slow_head(200, 'x');
  const Row rows[] = {
      // A head that keeps trickling is cut at the head deadline, however lively it looks.
      {"GET /", slow_head, 300, 5000, 250, 1500},
      // The body has its own deadline, from the end of the headers.
      {"POST /run HTTP/1.0\r\nContent-Length: 500\r\n\r\n", std::string(500, 'b'), 5000, 300, 250,
       1500},
  };
  for (const auto& row : rows) {
    event::Loop loop;
    http::ServerOptions o = loopback_options();
    o.tuning.head_timeout_ms = row.head_ms;
    o.tuning.body_timeout_ms = row.body_ms;
    std::vector<std::string> stages;
    http::ServerHooks h = echo_hooks(loop);
    h.timed_out = [&](http::Connection&, std::string_view stage) { stages.emplace_back(stage); };
    http::Server server(loop, o, h);
    REQUIRE(server.listen().ok());
    uint64_t start = monotonic_ms();
    uint64_t dropped = 0;
    RawClient c(loop, server.port(), row.first, [&] {
      dropped = monotonic_ms() - start;
      loop.stop();
    });
    size_t sent = 0;
    event::Timer drip(loop);
    drip.start(
        40,
        [&] {
          if (c.eof || !c.tcp || sent == row.trickled.size()) return;
          c.tcp->write(row.trickled.substr(sent++, 1));
        },
        40);
    event::Timer guard(loop);
    guard.start(4000, [&] { loop.stop(); });
    loop.run();
    INFO(row.first);
    CHECK(c.eof);
    CHECK(c.got.empty()); // dropped without an answer
    CHECK(dropped >= row.dropped_after_min);
    CHECK(dropped <= row.dropped_after_max);
    CHECK(sent < row.trickled.size()); // it never got to finish
    CHECK(server.stats().timed_out == 1);
    CHECK(stages == std::vector<std::string>{row.head_ms < row.body_ms ? "head" : "body"});
  }
}

TEST_CASE("the head hook sees the headers before the body and may answer at once", "[http]") {
  event::Loop loop;
  http::ServerHooks h = echo_hooks(loop);
  std::string seen;
  h.head = [&](const std::shared_ptr<http::Connection>& c, http::Request& head) {
    seen = head.method + " " + head.path;
    if (head.path == "/refused") {
      c->respond(403, "{\"error\":\"early\"}");
      return false;
    }
    return true;
  };
  http::Server server(loop, loopback_options(), h);
  REQUIRE(server.listen().ok());
  // The body never comes: the answer does not wait for it.
  RawClient refused(loop, server.port(), "POST /refused HTTP/1.0\r\nContent-Length: 100\r\n\r\n");
  REQUIRE(run_until(loop, [&] { return refused.eof; }));
  CHECK(seen == "POST /refused");
  CHECK(refused.got.rfind("HTTP/1.0 403 Forbidden\r\n", 0) == 0);
  RawClient ok(loop, server.port(), "POST /ok HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}");
  REQUIRE(run_until(loop, [&] { return ok.eof; }));
  CHECK(seen == "POST /ok");
  CHECK(ok.got.find("\"body\":\"{}\"") != std::string::npos);
}

TEST_CASE("admission: one address over its share is refused, others are served", "[http]") {
  event::Loop loop;
  http::ServerOptions o = loopback_options();
  o.bind_ip = "0.0.0.0";
  o.tuning.admission.max_pending_per_ip = 2;
  std::vector<std::string> reported;
  http::ServerHooks h = echo_hooks(loop);
  h.crowding = [&](const std::vector<http::EventTally::Entry>& events) {
    for (const auto& e : events)
      reported.push_back(e.kind + " " + e.reason + " " + e.peer + " " + std::to_string(e.count));
  };
  http::Server server(loop, o, h);
  REQUIRE(server.listen().ok());
  int port = server.port();
  // Two idle connections from 127.0.0.1 use up its share.
  int idle[2];
  for (int& fd : idle) {
    fd = connect_from("127.0.0.1", port);
    REQUIRE(fd >= 0);
  }
  REQUIRE(run_until(loop, [&] { return server.from("127.0.0.1").pending() == 2; }));
  auto third = exchange_from("127.0.0.1", port, "GET /third HTTP/1.0\r\n\r\n");
  auto other = exchange_from("127.0.0.2", port, "GET /other HTTP/1.0\r\n\r\n");
  REQUIRE(run_until(loop, [&] { return ready(third) && ready(other); }));
  CHECK(third.get().empty()); // closed at accept, unread
  CHECK(other.get().rfind("HTTP/1.0 200 OK", 0) == 0);
  CHECK(server.stats().refused == 1);
  CHECK(server.from("127.0.0.1").pending() == 2);
  // The refusal is reported within a second, once.
  REQUIRE(run_until(loop, [&] { return !reported.empty(); }));
  CHECK(reported == std::vector<std::string>{"refused address 127.0.0.1 1"});
  for (int fd : idle)
    ::close(fd);
  REQUIRE(run_until(loop, [&] { return server.open_connections() == 0; }));
  CHECK(server.from("127.0.0.1").total() == 0);
}

TEST_CASE("admission: a full server sheds its oldest idle connection, not the newcomer", "[http]") {
  struct Row {
    const char* what;
    bool first_authenticated; // the oldest is a known peer
    int shed_index;           // which of the three idle connections goes
  };
  const Row rows[] = {
      {"the oldest goes", false, 0},
      {"a known peer's goes last", true, 1},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    event::Loop loop;
    http::ServerOptions o = loopback_options();
    o.bind_ip = "0.0.0.0";
    o.tuning.admission.max_connections = 3;
    http::ServerHooks h = echo_hooks(loop);
    h.ready = [&](const std::shared_ptr<http::Connection>& c) {
      if (row.first_authenticated && c->id() == 1) c->set_authenticated();
      return true;
    };
    http::Server server(loop, o, h);
    REQUIRE(server.listen().ok());
    int port = server.port();
    std::vector<int> idle;
    for (size_t i = 0; i < 3; ++i) {
      idle.push_back(connect_from("127.0.0.1", port));
      REQUIRE(idle.back() >= 0);
      REQUIRE(run_until(loop, [&] { return server.open_connections() == i + 1; }));
    }
    auto fresh = exchange_from("127.0.0.2", port, "GET /fresh HTTP/1.0\r\n\r\n");
    REQUIRE(run_until(loop, [&] { return ready(fresh); }));
    CHECK(fresh.get().rfind("HTTP/1.0 200 OK", 0) == 0);
    CHECK(server.stats().shed == 1);
    CHECK(server.stats().refused == 0);
    // The shed one reads EOF at once; the others are still open.
    for (int i = 0; i < 3; ++i) {
      char b;
      ssize_t n = ::recv(idle[static_cast<size_t>(i)], &b, 1, MSG_DONTWAIT);
      INFO("idle connection " << i);
      if (i == row.shed_index)
        CHECK(n == 0);
      else
        CHECK(n < 0);
    }
    for (int fd : idle)
      ::close(fd);
    REQUIRE(run_until(loop, [&] { return server.open_connections() == 0; }));
  }
}

TEST_CASE("admission: an address's handshakes beyond its share wait their turn", "[http]") {
  test::TempDir dir;
  REQUIRE(test::have_openssl());
  test::make_ca(dir);
  test::make_leaf(dir, "server", "agent", "5e");
  test::make_leaf(dir, "client", "dispatcher", "c1");
  auto server_creds =
      tls::Credentials::load(dir / "server.crt", dir / "server.key", dir / "ca.crt");
  auto client_creds =
      tls::Credentials::load(dir / "client.crt", dir / "client.key", dir / "ca.crt");
  REQUIRE(server_creds.ok());
  REQUIRE(client_creds.ok());
  auto server_cfg = tls::Config::server(*server_creds, tls::PeerCheck::required);
  auto client_cfg = tls::Config::client(*client_creds, tls::PeerCheck::required);
  REQUIRE(server_cfg.ok());
  REQUIRE(client_cfg.ok());

  event::Loop loop;
  http::ServerOptions o = loopback_options();
  o.bind_ip = "0.0.0.0";
  o.tls = *server_cfg;
  o.tuning.admission.max_handshakes_per_ip = 2;
  http::ServerHooks hooks;
  hooks.request = [](const std::shared_ptr<http::Connection>& c, http::Request&) {
    c->respond(200, "{}");
  };
  http::Server server(loop, o, hooks);
  REQUIRE(server.listen().ok());
  int port = server.port();
  // Two handshakes from 127.0.0.1 that never send a ClientHello take its share.
  int stalled[2];
  for (int& fd : stalled) {
    fd = connect_from("127.0.0.1", port);
    REQUIRE(fd >= 0);
  }
  REQUIRE(run_until(loop, [&] { return server.from("127.0.0.1")[http::Phase::handshake] == 2; }));
  // A genuine client from the same address waits; nothing of it is read meanwhile.
  http::ClientOptions co = client_options(port);
  co.tls = *client_cfg;
  std::optional<http::ClientResult> queued;
  auto call =
      http::ClientCall::start(loop, std::move(co), http::format_request("GET", "/q", "x", ""),
                              [&](http::ClientResult r) { queued = std::move(r); });
  REQUIRE(run_until(loop, [&] { return server.from("127.0.0.1")[http::Phase::queued] == 1; }));
  event::Timer settle(loop);
  settle.start(200, [&] { loop.stop(); });
  loop.run();
  CHECK_FALSE(queued);
  CHECK(server.from("127.0.0.1")[http::Phase::queued] == 1);
  // When one of the stalled handshakes ends, the waiting one starts and is served.
  ::close(stalled[0]);
  REQUIRE(run_until(loop, [&] { return queued.has_value(); }));
  REQUIRE(queued->status.ok());
  CHECK(queued->response()->status == 200);
  CHECK(server.stats().refused == 0);
  ::close(stalled[1]);
  REQUIRE(run_until(loop, [&] { return server.open_connections() == 0; }));
}

TEST_CASE("admission: a handshake timed out by the server's own backlog is not the peer's failure",
          "[http]") {
  test::TempDir dir;
  REQUIRE(test::have_openssl());
  test::make_ca(dir);
  test::make_leaf(dir, "server", "agent", "5e");
  auto server_creds =
      tls::Credentials::load(dir / "server.crt", dir / "server.key", dir / "ca.crt");
  REQUIRE(server_creds.ok());
  auto server_cfg = tls::Config::server(*server_creds, tls::PeerCheck::required);
  REQUIRE(server_cfg.ok());

  event::Loop loop;
  http::ServerOptions o = loopback_options();
  o.bind_ip = "0.0.0.0";
  o.tls = *server_cfg;
  o.handshake_timeout_ms = 300;
  o.tuning.admission.max_handshakes_per_ip = 1;
  http::ServerHooks hooks;
  std::vector<std::string> failures;
  std::map<std::string, uint64_t> crowding;
  hooks.handshake_failed = [&](const event::SockAddr& peer, const std::string& reason) {
    failures.push_back(peer.ip() + " " + reason);
  };
  hooks.crowding = [&](const std::vector<http::EventTally::Entry>& events) {
    for (const auto& e : events)
      crowding[e.kind + "/" + e.reason + "/" + e.peer] += e.count;
  };
  http::Server server(loop, o, hooks);
  REQUIRE(server.listen().ok());
  // A stalled peer takes 127.0.0.1's one handshake; two more wait behind it, each having sent
  // the start of a ClientHello that nothing has read yet.
  int stalled = connect_from("127.0.0.1", server.port());
  REQUIRE(stalled >= 0);
  REQUIRE(run_until(loop, [&] { return server.from("127.0.0.1")[http::Phase::handshake] == 1; }));
  int waiting[2];
  for (int& fd : waiting) {
    fd = connect_from("127.0.0.1", server.port());
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "\x16\x03\x01", 3) == 3);
  }
  REQUIRE(run_until(loop, [&] { return server.from("127.0.0.1")[http::Phase::queued] == 2; }));
  // The server is starved past every deadline (the loop does not run): when it wakes, all
  // three time out in one turn. Each waiting one is started as the one before it ends, but
  // its peer's bytes are still unread, so the server is behind, not the peer.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  REQUIRE(run_until(loop, [&] { return server.open_connections() == 0 && !crowding.empty(); }));
  CHECK(failures == std::vector<std::string>{"127.0.0.1 handshake timed out"});
  CHECK(crowding["timeout/handshake-behind/127.0.0.1"] == 2);
  ::close(stalled);
  for (int fd : waiting)
    ::close(fd);
}

TEST_CASE("client: TLS call with resumption, interim responses and transport errors", "[http]") {
  test::TempDir dir;
  REQUIRE(test::have_openssl());
  test::make_ca(dir);
  test::make_leaf(dir, "server", "agent", "5e");
  test::make_leaf(dir, "client", "dispatcher", "c1");
  auto server_creds =
      tls::Credentials::load(dir / "server.crt", dir / "server.key", dir / "ca.crt");
  auto client_creds =
      tls::Credentials::load(dir / "client.crt", dir / "client.key", dir / "ca.crt");
  REQUIRE(server_creds.ok());
  REQUIRE(client_creds.ok());
  auto server_cfg = tls::Config::server(*server_creds, tls::PeerCheck::required);
  auto client_cfg = tls::Config::client(*client_creds, tls::PeerCheck::required);
  REQUIRE(server_cfg.ok());
  REQUIRE(client_cfg.ok());

  event::Loop loop;
  http::ServerHooks hooks;
  hooks.request = [&](const std::shared_ptr<http::Connection>& c, http::Request& req) {
    if (req.path == "/two") { // pairing style: two answers on one connection
      c->send(http::format_response(200, "{\"status\":\"pending\"}"));
      auto t = std::make_shared<event::Timer>(loop);
      t->start(20, [c, t] { c->respond(200, "{\"status\":\"approved\"}"); });
      return;
    }
    if (req.path == "/silent") return; // never answers
    c->respond(200, "{\"serial\":\"" + c->peer_serial() + "\"}");
  };
  http::ServerOptions o = loopback_options();
  o.tls = *server_cfg;
  http::Server server(loop, o, hooks);
  REQUIRE(server.listen().ok());

  auto call = [&](const std::string& path, http::ClientOptions co) {
    co.host = "127.0.0.1";
    co.port = server.port();
    co.tls = *client_cfg;
    http::ClientResult out;
    std::vector<std::string> interim;
    auto c = http::ClientCall::start(
        loop, std::move(co), http::format_request("GET", path, "127.0.0.1", ""),
        [&](http::ClientResult r) {
          out = std::move(r);
          loop.stop();
        },
        [&](const http::Response& r) { interim.push_back(r.body); });
    loop.run();
    return std::make_pair(std::move(out), interim);
  };

  auto [first, i1] = call("/serial", {});
  REQUIRE(first.status.ok());
  CHECK(first.response()->status == 200);
  CHECK(first.response()->body == "{\"serial\":\"c1\"}");
  CHECK(first.peer_serial == "5e");
  CHECK_FALSE(first.tls_resumed);
  REQUIRE(first.session);

  http::ClientOptions again;
  again.resume = std::move(first.session);
  auto [second, i2] = call("/serial", std::move(again));
  REQUIRE(second.status.ok());
  CHECK(second.tls_resumed);
  CHECK(second.response()->body == "{\"serial\":\"c1\"}");

  http::ClientOptions two;
  two.responses = 2;
  auto [paired, interim] = call("/two", std::move(two));
  REQUIRE(paired.status.ok());
  CHECK(interim ==
        std::vector<std::string>{"{\"status\":\"pending\"}", "{\"status\":\"approved\"}"});

  http::ClientOptions quick;
  quick.read_timeout_ms = 200;
  auto [silent, i3] = call("/silent", std::move(quick));
  CHECK(silent.status.message() == "read timeout");

  // Nothing listens on this port any more once the server is gone.
  int port = server.port();
  server.stop_accepting();
  http::ClientResult refused;
  auto c =
      http::ClientCall::start(loop, client_options(port), http::format_request("GET", "/", "x", ""),
                              [&](http::ClientResult r) {
                                refused = std::move(r);
                                loop.stop();
                              });
  loop.run();
  CHECK(refused.status.message() == "connection refused");
}
