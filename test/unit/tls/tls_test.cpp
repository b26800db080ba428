// Tests for src/tls/tls.cpp: our server and client against each other and against OpenSSL's
// s_client and s_server (the original is built on OpenSSL).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "event/process.hpp"
#include "test/unit/testutil.hpp"
#include "test/unit/tls/fixture.hpp"
#include "tls/tls.hpp"

using namespace cx;
using cx::test::TempDir;

namespace {

using Fixture = test::TlsFixture;

// An echo server: for each connection, handshake, then echo "<serial>|<resumed>|<data>".
struct EchoServer {
  event::TcpListener listener;
  std::shared_ptr<tls::Config> config;
  std::vector<std::unique_ptr<tls::Stream>> conns;
  std::vector<std::string> handshake_errors;
  int handshakes_ok = 0;

  EchoServer(event::Loop& loop, std::shared_ptr<tls::Credentials> creds) : listener(loop) {
    auto c = tls::Config::server(creds, tls::PeerCheck::required);
    REQUIRE(c.ok());
    config = *c;
    REQUIRE(listener.listen("127.0.0.1", 0, 16, [this] { accept(); }).ok());
  }
  void accept() {
    auto tcp = listener.accept();
    REQUIRE(tcp.ok());
    conns.push_back(std::make_unique<tls::Stream>(config, std::move(*tcp)));
    tls::Stream* s = conns.back().get();
    s->handshake([this, s](Status st) {
      if (!st.ok()) {
        handshake_errors.push_back(st.message());
        s->close();
        return;
      }
      ++handshakes_ok;
      s->read_start(
          [s](std::string_view d) {
            s->write(s->peer_serial() + "|" + (s->resumed() ? "resumed" : "full") + "|" +
                     std::string(d));
            s->end();
          },
          [](int) {});
    });
  }
  int port() { return listener.local_port(); }
};

struct ClientOutcome {
  Status handshake;
  std::string reply;
  bool resumed = false;
  std::optional<tls::Session> session;
};

ClientOutcome run_client(event::Loop& loop, std::shared_ptr<tls::Credentials> creds, int port,
                         const tls::Session* resume = nullptr) {
  auto cfg = tls::Config::client(creds, tls::PeerCheck::required);
  REQUIRE(cfg.ok());
  ClientOutcome out;
  event::Connector conn(loop);
  std::unique_ptr<tls::Stream> stream;
  conn.connect("127.0.0.1", port, 3000, [&](Result<std::unique_ptr<event::TcpStream>> tcp) {
    REQUIRE(tcp.ok());
    stream = std::make_unique<tls::Stream>(*cfg, std::move(*tcp));
    if (resume) stream->set_session(*resume);
    stream->handshake([&](Status st) {
      out.handshake = st;
      if (!st.ok()) {
        stream->close();
        loop.stop();
        return;
      }
      out.resumed = stream->resumed();
      out.session = stream->session();
      stream->read_start([&](std::string_view d) { out.reply += d; },
                         [&](int) {
                           stream->close();
                           loop.stop();
                         });
      stream->write("hello");
    });
  });
  loop.run();
  return out;
}

} // namespace

TEST_CASE("mutual TLS between our client and server, then a resumed session", "[tls]") {
  Fixture f;
  event::Loop loop;
  EchoServer server(loop, f.creds("server"));

  auto first = run_client(loop, f.creds("client"), server.port());
  REQUIRE(first.handshake.ok());
  CHECK(first.reply == "0100|full|hello");
  CHECK_FALSE(first.resumed);
  REQUIRE(first.session);

  // Through save/load, as the CLI's session cache file does.
  auto reloaded = tls::Session::load(first.session->save());
  REQUIRE(reloaded.ok());
  auto second = run_client(loop, f.creds("client"), server.port(), &*reloaded);
  REQUIRE(second.handshake.ok());
  CHECK(second.resumed);
  // The server still knows the client's certificate serial on a resumed session.
  CHECK(second.reply == "0100|resumed|hello");
  CHECK_FALSE(tls::Session::load("garbage").ok());
}

TEST_CASE("the server refuses clients without a certificate or from another CA", "[tls]") {
  Fixture f;
  event::Loop loop;
  EchoServer server(loop, f.creds("server"));
  // No client certificate at all.
  auto none = run_client(loop, f.creds(""), server.port());
  CHECK_FALSE(none.handshake.ok());
  // A certificate from a CA the server does not trust.
  auto stranger = run_client(loop, f.creds("stranger", "ca"), server.port());
  CHECK_FALSE(stranger.handshake.ok());
  CHECK(server.handshakes_ok == 0);
  CHECK(server.handshake_errors.size() == 2);
  // Our client sees a failed handshake, of kind tls.
  CHECK(stranger.handshake.kind() == ErrorKind::tls);
  CHECK(stranger.handshake.message().rfind("TLS handshake failed: ", 0) == 0);
  // The listener keeps serving after failed handshakes.
  auto good = run_client(loop, f.creds("client"), server.port());
  CHECK(good.handshake.ok());
}

TEST_CASE("openssl s_client completes mutual TLS with our server, and is refused without a cert",
          "[tls]") {
  Fixture f;
  event::Loop loop;
  EchoServer server(loop, f.creds("server"));
  auto s_client = [&](bool with_cert) {
    event::ProcessOptions o;
    o.argv = {"/usr/bin/openssl",
              "s_client",
              "-connect",
              "127.0.0.1:" + std::to_string(server.port()),
              "-CAfile",
              f.dir / "ca.crt",
              "-quiet"};
    if (with_cert) {
      o.argv.insert(o.argv.end(), {"-cert", f.dir / "client.crt", "-key", f.dir / "client.key"});
    }
    o.stdin_data = "over-openssl";
    o.timeout_ms = 10000;
    event::ProcessResult result;
    auto p = event::Process::start(loop, o, [&](event::ProcessResult r) {
      result = std::move(r);
      loop.stop(); // the listener would keep the loop running
    });
    loop.run();
    return result;
  };
  auto ok = s_client(true);
  CHECK(ok.out == "0100|full|over-openssl");
  auto refused = s_client(false);
  CHECK(refused.out.find("over-openssl") == std::string::npos);
  CHECK(server.handshakes_ok == 1);
}

TEST_CASE("our client completes a handshake with openssl s_server -Verify 1", "[tls]") {
  Fixture f;
  event::Loop loop;
  // Ask the OS for a free port, then let s_server bind it.
  int port;
  {
    event::TcpListener probe(loop);
    REQUIRE(probe.listen("127.0.0.1", 0, 1, [] {}).ok());
    port = probe.local_port();
  }
  event::ProcessOptions o;
  o.argv = {"/usr/bin/openssl",
            "s_server",
            "-accept",
            "127.0.0.1:" + std::to_string(port),
            "-cert",
            f.dir / "server.crt",
            "-key",
            f.dir / "server.key",
            "-CAfile",
            f.dir / "ca.crt",
            "-Verify",
            "1",
            "-naccept",
            "1",
            "-www"};
  o.timeout_ms = 20000;
  bool server_done = false;
  auto server = event::Process::start(loop, o, [&](event::ProcessResult) { server_done = true; });

  auto cfg = tls::Config::client(f.creds("client"), tls::PeerCheck::required);
  REQUIRE(cfg.ok());
  std::string reply;
  Status handshake = error("not attempted");
  std::unique_ptr<event::Connector> conn;
  std::unique_ptr<tls::Stream> stream;
  event::Timer retry(loop);
  int attempts = 0;
  std::function<void()> attempt = [&] {
    conn = std::make_unique<event::Connector>(loop);
    conn->connect("127.0.0.1", port, 1000, [&](Result<std::unique_ptr<event::TcpStream>> tcp) {
      if (!tcp.ok()) { // s_server is not listening yet
        if (++attempts < 100) retry.start(50, attempt);
        return;
      }
      stream = std::make_unique<tls::Stream>(*cfg, std::move(*tcp));
      stream->handshake([&](Status st) {
        handshake = st;
        if (!st.ok()) return;
        stream->read_start([&](std::string_view d) { reply += d; }, [&](int) { stream->close(); });
        stream->write("GET / HTTP/1.0\r\n\r\n");
      });
    });
  };
  attempt();
  loop.run();
  INFO(handshake.message());
  REQUIRE(handshake.ok());
  CHECK(reply.find("HTTP/1.0 200 ok") != std::string::npos);
  CHECK(reply.find("TLSv1.2") != std::string::npos);
  CHECK(server_done);
}

TEST_CASE("RSA certificates issued like the Perl original (v1, no extensions) are accepted",
          "[tls]") {
  TempDir dir;
  REQUIRE(test::have_openssl());
  test::make_ca(dir, "ca", "rsa");
  test::make_leaf(dir, "server", "vm", "02", "ca", "rsa");
  test::make_leaf(dir, "client", "ctrl-exec-dispatcher", "03", "ca", "rsa");
  auto creds = [&](const std::string& n) {
    auto c = tls::Credentials::load(dir / (n + ".crt"), dir / (n + ".key"), dir / "ca.crt");
    REQUIRE(c.ok());
    return *c;
  };
  event::Loop loop;
  EchoServer server(loop, creds("server"));
  auto r = run_client(loop, creds("client"), server.port());
  INFO(r.handshake.message());
  REQUIRE(r.handshake.ok());
  CHECK(r.reply == "03|full|hello");
}

TEST_CASE("serial hex matches openssl's form", "[tls]") {
  struct Row {
    std::vector<unsigned char> der;
    const char* hex;
  };
  const Row rows[] = {{{0x02}, "02"},
                      {{0x0a}, "0A"},
                      {{0x01, 0x00}, "0100"},
                      {{0x00, 0x80}, "80"}, // DER sign padding is not part of the number
                      {{0x00}, "00"}};
  for (const auto& r : rows) {
    mbedtls_x509_buf b{};
    b.p = const_cast<unsigned char*>(r.der.data());
    b.len = r.der.size();
    CHECK(tls::serial_hex(b) == r.hex);
  }
}

TEST_CASE("credential errors name the file", "[tls]") {
  TempDir dir;
  auto missing = tls::Credentials::load(dir / "nope.crt", dir / "nope.key", "");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message().find("nope.crt") != std::string::npos);
  test::sh("echo garbage > '" + dir / "bad.crt" + "'");
  test::sh("cd '" + dir.path() + "' && openssl ecparam -genkey -name prime256v1 -out k.key");
  auto bad = tls::Credentials::load(dir / "bad.crt", dir / "k.key", "");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.message().find("bad.crt") != std::string::npos);
}

TEST_CASE("credential errors name the file the failing part came from", "[tls]") {
  Fixture f;
  const std::string crt = f.dir / "client.crt", key = f.dir / "client.key", ca = f.dir / "ca.crt";
  const std::string other_key = f.dir / "stranger.key", garbage = f.dir / "garbage.pem";
  test::sh("echo garbage > '" + garbage + "'");
  struct Row {
    std::string cert, key, ca;
    std::string message; // the start of it (mbedTLS's own words follow)
  };
  const Row rows[] = {
      {crt, "", "", "'" + crt + "': certificate and key must be given together"},
      {garbage, key, "", "'" + garbage + "': certificate cannot be parsed: "},
      {crt, garbage, "", "'" + garbage + "': key cannot be parsed: "},
      {crt, other_key, "",
       "'" + crt + "' and '" + other_key + "': the certificate does not match the key"},
      {crt, key, garbage, "'" + garbage + "': CA certificate cannot be parsed: "},
  };
  for (const auto& r : rows) {
    INFO(r.message);
    auto c = tls::Credentials::load(r.cert, r.key, r.ca);
    REQUIRE_FALSE(c.ok());
    CHECK(c.kind() == ErrorKind::config);
    CHECK(c.message().rfind(r.message, 0) == 0);
  }
  // Good files load; from_pem reports the same failures without file names.
  CHECK(tls::Credentials::load(crt, key, ca).ok());
  auto bare = tls::Credentials::from_pem("x", "", "");
  REQUIRE_FALSE(bare.ok());
  CHECK(bare.message() == "certificate and key must be given together");
  CHECK(bare.kind() == ErrorKind::config);
}

TEST_CASE("the pair record skips the match check only while both files are unchanged", "[tls]") {
  Fixture f;
  const std::string crt = f.dir / "client.crt", key = f.dir / "client.key";
  const std::string other_key = f.dir / "stranger.key", record = f.dir / "pair-checked";
  // A good pair is checked once and remembered.
  REQUIRE(tls::Credentials::load(crt, key, "", record).ok());
  std::string remembered = test::slurp(record);
  CHECK(remembered.find(crt) != std::string::npos);
  CHECK(remembered.find(key) != std::string::npos);
  // A mismatched pair is never remembered, so it fails every time.
  for (int i = 0; i < 2; ++i) {
    auto bad = tls::Credentials::load(crt, other_key, "", record);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.message(), Catch::Contains("does not match"));
  }
  CHECK(test::slurp(record) == remembered);
  // Proof that the record is what skips the check: a record forged for the mismatched pair's
  // stamps lets it through (the handshake would then fail); any change to a file ends that.
  test::sh("cp '" + other_key + "' '" + f.dir / "k2.key" + "'");
  auto stamp_of = [&](const std::string& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
           std::to_string(st.st_size) + " " +
           std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                          st.st_mtim.tv_nsec);
  };
  std::string k2 = f.dir / "k2.key";
  std::string fake = "ctrl-exec pair-check 1\n" + crt + "\n" + stamp_of(crt) + "\n" + k2 + "\n" +
                     stamp_of(k2) + "\n";
  REQUIRE(write_file_atomic(record, fake).ok());
  CHECK(tls::Credentials::load(crt, k2, "", record).ok());
  test::sh("sleep 0.01; touch '" + k2 + "'");
  CHECK_FALSE(tls::Credentials::load(crt, k2, "", record).ok());
  // Without a record path nothing is read or written.
  CHECK(tls::Credentials::load(crt, key, "").ok());
}
