// Tests for src/engine/agent_client.cpp with the result builders of src/engine/engine.cpp (tag
// [engine]): real exchanges on loopback, from the failure the client meets to the text and
// state the operator gets (dispatcher-and-api §5.4, §5.6, §5.8). The texts come from the kind
// the failure has where it happens, so a reworded transport message cannot change them.
#include <catch2/catch.hpp>

#include <string>

#include "engine/agent_client.hpp"
#include "engine/engine.hpp"
#include "event/tcp.hpp"
#include "http/server.hpp"
#include "log/log.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::engine;

namespace {

struct Certs {
  test::TempDir dir;
  Certs() {
    REQUIRE(test::have_openssl());
    test::make_ca(dir);
    test::make_leaf(dir, "agent", "db-01", "7f3a9c");
    test::make_leaf(dir, "dispatcher", "ctrl-exec-dispatcher", "0100");
    test::make_ca(dir, "other");
    test::make_leaf(dir, "stranger", "db-01", "a1", "other");
  }
  std::shared_ptr<tls::Config> server(const std::string& leaf, const std::string& ca) {
    auto creds =
        tls::Credentials::load(dir / (leaf + ".crt"), dir / (leaf + ".key"), dir / (ca + ".crt"));
    REQUIRE(creds.ok());
    auto cfg = tls::Config::server(*creds, tls::PeerCheck::required);
    REQUIRE(cfg.ok());
    return *cfg;
  }
  std::unique_ptr<AgentClient> client(uint64_t timeout_ms) {
    auto c = AgentClient::create(dir / "dispatcher.crt", dir / "dispatcher.key", dir / "ca.crt",
                                 timeout_ms, nullptr);
    REQUIRE(c.ok());
    return std::move(*c);
  }
};

// What the peer on the agent's port does.
enum class Peer {
  nothing,       // nothing listens
  silent_tcp,    // accepts TCP and never speaks (no TLS)
  hang_up,       // accepts TCP and closes at once
  stranger,      // a TLS server whose certificate comes from another CA
  silent_agent,  // completes TLS, reads the request, never answers
  refusing_agent // answers 403 {"error":"serial mismatch"}
};

AgentReply exchange(Certs& certs, Peer peer, uint64_t timeout_ms) {
  event::Loop loop;
  int port = 0;
  std::unique_ptr<event::TcpListener> tcp;
  std::vector<std::unique_ptr<event::TcpStream>> conns;
  std::unique_ptr<http::Server> server;
  if (peer == Peer::nothing || peer == Peer::silent_tcp || peer == Peer::hang_up) {
    tcp = std::make_unique<event::TcpListener>(loop);
    REQUIRE(tcp->listen("127.0.0.1", 0, 16,
                        [&] {
                          auto s = tcp->accept();
                          REQUIRE(s.ok());
                          if (peer == Peer::hang_up) return; // the stream closes as it goes
                          conns.push_back(std::move(*s));
                        })
                .ok());
    port = tcp->local_port();
    if (peer == Peer::nothing) tcp.reset();
  } else {
    http::ServerOptions o;
    o.bind_ip = "127.0.0.1";
    o.tls =
        peer == Peer::stranger ? certs.server("stranger", "other") : certs.server("agent", "ca");
    http::ServerHooks hooks;
    hooks.request = [peer](const std::shared_ptr<http::Connection>& c, http::Request&) {
      if (peer == Peer::refusing_agent) c->respond(403, R"({"error":"serial mismatch"})");
    };
    server = std::make_unique<http::Server>(loop, o, hooks);
    REQUIRE(server->listen().ok());
    port = server->port();
  }
  auto client = certs.client(timeout_ms);
  AgentReply out;
  bool done = false;
  auto call = client->call(loop, "127.0.0.1:" + std::to_string(port), 0, "POST", "/run", "{}",
                           [&](AgentReply r) {
                             out = std::move(r);
                             done = true;
                             loop.stop();
                           });
  loop.run();
  REQUIRE(done);
  return out;
}

} // namespace

TEST_CASE("agent client: failures on the wire become the original's texts and our states",
          "[engine]") {
  log::init("test", log::Sink::capture);
  Certs certs;
  struct Row {
    Peer peer;
    ErrorKind kind;   // of the transport failure or the answer
    std::string run;  // the run result's error (sync)
    std::string ping; // the ping result's error
    HostState state;
  };
  const std::string host = "host '127.0.0.1' ";
  const Row rows[] = {
      {Peer::nothing, ErrorKind::refused,
       host + "did not respond on port {port} - connection refused (agent not running, or wrong "
              "port?)",
       host + "did not respond on port {port} - connection refused (agent not running, or wrong "
              "port?)",
       HostState::unreachable},
      // The connect deadline covers the TLS handshake.
      {Peer::silent_tcp, ErrorKind::timeout, host + "did not respond - connection timed out",
       host + "did not respond - connection timed out", HostState::timeout},
      {Peer::hang_up, ErrorKind::tls,
       "TLS handshake with '127.0.0.1' failed - certificate or trust mismatch",
       "TLS handshake with '127.0.0.1' failed - certificate or trust mismatch", HostState::error},
      {Peer::stranger, ErrorKind::tls,
       "TLS handshake with '127.0.0.1' failed - certificate or trust mismatch",
       "TLS handshake with '127.0.0.1' failed - certificate or trust mismatch", HostState::error},
      // Only the run endpoint words a read timeout itself (§5.4).
      {Peer::silent_agent, ErrorKind::read_timeout, "read timeout after 1s",
       host + "did not respond - connection timed out", HostState::timeout},
      {Peer::refusing_agent, ErrorKind::denied, "forbidden: serial mismatch",
       "forbidden: serial mismatch", HostState::denied},
  };
  RunSpec spec;
  spec.script = "backup";
  spec.reqid = "a1b2c3d4e5f60001";
  for (const auto& r : rows) {
    AgentReply reply = exchange(certs, r.peer, 300);
    INFO(kind_name(r.kind) << ": " << reply.failure().message());
    CHECK(kind_name(reply.failure().kind()) == kind_name(r.kind));
    auto expand = [&](std::string text) {
      if (auto at = text.find("{port}"); at != std::string::npos)
        text.replace(at, 6, std::to_string(reply.port));
      return text;
    };
    HostResult run = run_result("db-01", reply, spec, 1);
    CHECK(string_member(run.doc, "error") == expand(r.run));
    CHECK(state_name(run.state) == state_name(r.state));
    HostResult ping = ping_result("db-01", reply, "b9186bcba84c8a3a");
    CHECK(string_member(ping.doc, "error") == expand(r.ping));
    CHECK(state_name(ping.state) == state_name(r.state));
  }
  log::shutdown();
}
