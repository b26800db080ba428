// Tests for src/http/server.cpp and src/http/client.cpp over real loopback sockets.
#include <catch2/catch.hpp>

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
