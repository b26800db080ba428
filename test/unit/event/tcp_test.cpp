// Tests for src/event/tcp.cpp: real sockets on loopback, port 0.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "event/loop.hpp"
#include "event/tcp.hpp"

using namespace cx::event;

TEST_CASE("a connector reaches a listener and data flows both ways", "[event]") {
  Loop loop;
  TcpListener listener(loop);
  std::unique_ptr<TcpStream> server_side;
  std::string server_got, client_got;
  REQUIRE(listener
              .listen("127.0.0.1", 0, 16,
                      [&] {
                        auto s = listener.accept();
                        REQUIRE(s.ok());
                        server_side = std::move(*s);
                        server_side->read_start(
                            [&](std::string_view d) {
                              server_got += d;
                              if (server_got == "ping") server_side->write("pong");
                            },
                            [](int) {});
                      })
              .ok());
  int port = listener.local_port();
  REQUIRE(port > 0);
  Connector conn(loop);
  std::unique_ptr<TcpStream> client;
  conn.connect("127.0.0.1", port, 2000, [&](cx::Result<std::unique_ptr<TcpStream>> r) {
    REQUIRE(r.ok());
    client = std::move(*r);
    CHECK(client->peer().port() == port);
    CHECK(client->peer().ip() == "127.0.0.1");
    client->read_start(
        [&](std::string_view d) {
          client_got += d;
          client->close();
          server_side->close();
          listener.close();
        },
        [](int) {});
    client->write("ping");
  });
  loop.run();
  CHECK(server_got == "ping");
  CHECK(client_got == "pong");
}

TEST_CASE("end() lingers on a stream that is still reading until the peer closes", "[event]") {
  // Closing with unread input makes the kernel send a reset, which can destroy a response the
  // peer has not read yet (a 413 to a client still sending its body). end() must therefore
  // keep reading, and discarding, until the peer closes, even when a read is already active.
  Loop loop;
  TcpListener listener(loop);
  std::unique_ptr<TcpStream> server_side, client;
  std::vector<std::string> events;
  std::string client_got;
  Timer later(loop);
  REQUIRE(listener
              .listen("127.0.0.1", 0, 16,
                      [&] {
                        auto s = listener.accept();
                        REQUIRE(s.ok());
                        server_side = std::move(*s);
                        server_side->read_start(
                            [&](std::string_view) {
                              if (!events.empty()) return;
                              events.push_back("server-answered");
                              server_side->write("answer");
                              server_side->end([&] { events.push_back("server-closed"); });
                            },
                            [](int) {});
                      })
              .ok());
  Connector conn(loop);
  conn.connect("127.0.0.1", listener.local_port(), 2000,
               [&](cx::Result<std::unique_ptr<TcpStream>> r) {
                 REQUIRE(r.ok());
                 client = std::move(*r);
                 client->read_start([&](std::string_view d) { client_got += d; },
                                    [&](int status) {
                                      CHECK(status == UV_EOF);
                                      events.push_back("client-eof");
                                      // More input after the server's FIN: it is discarded.
                                      client->write(std::string(65536, 'x'));
                                      later.start(200, [&] {
                                        events.push_back("client-close");
                                        client->close();
                                        listener.close();
                                      });
                                    });
                 client->write("request");
               });
  loop.run();
  CHECK(client_got == "answer");
  CHECK(events ==
        std::vector<std::string>{"server-answered", "client-eof", "client-close", "server-closed"});
}

TEST_CASE("connection refused and unresolvable names give the OS wording and their kind",
          "[event]") {
  Loop loop;
  // Find a port that nothing listens on: bind, read the port, close.
  int port;
  {
    TcpListener probe(loop);
    REQUIRE(probe.listen("127.0.0.1", 0, 1, [] {}).ok());
    port = probe.local_port();
  }
  cx::Status refused, unresolved;
  Connector a(loop), b(loop);
  a.connect("127.0.0.1", port, 2000, [&](auto r) { refused = r.status(); });
  b.connect("no-such-host.invalid", port, 5000, [&](auto r) { unresolved = r.status(); });
  loop.run();
  CHECK(refused.message() == "connection refused");
  CHECK(unresolved.message().rfind("cannot resolve host 'no-such-host.invalid': ", 0) == 0);
  CHECK(refused.kind() == cx::ErrorKind::refused);
  CHECK(unresolved.kind() == cx::ErrorKind::dns);
}

TEST_CASE("libuv errors map to kinds; the text stays libuv's", "[event]") {
  struct Row {
    int code;
    cx::ErrorKind kind;
    const char* text;
  };
  const Row rows[] = {
      {UV_ECONNREFUSED, cx::ErrorKind::refused, "connection refused"},
      {UV_EHOSTUNREACH, cx::ErrorKind::unreachable, "host is unreachable"},
      {UV_ENETUNREACH, cx::ErrorKind::unreachable, "network is unreachable"},
      {UV_ETIMEDOUT, cx::ErrorKind::timeout, "connection timed out"},
      {UV_EAI_NONAME, cx::ErrorKind::dns, "unknown node or service"},
      {UV_EAI_AGAIN, cx::ErrorKind::dns, "temporary failure"},
      {UV_EAI_FAIL, cx::ErrorKind::dns, "permanent failure"},
      {UV_ECONNRESET, cx::ErrorKind::io, "connection reset by peer"},
      {UV_EPIPE, cx::ErrorKind::io, "broken pipe"},
      {UV_ENETDOWN, cx::ErrorKind::io, "network is down"},
      {UV_EHOSTDOWN, cx::ErrorKind::io, "host is down"},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    CHECK(connection_error_kind(r.code) == r.kind);
    cx::Status st = connection_error(r.code);
    CHECK(st.kind() == r.kind);
    CHECK(st.message() == r.text);
  }
}

TEST_CASE("a destroyed connector never calls back", "[event]") {
  Loop loop;
  bool called = false;
  {
    Connector c(loop);
    c.connect("localhost", 9, 1000, [&](auto) { called = true; });
  }
  loop.run();
  CHECK_FALSE(called);
}
