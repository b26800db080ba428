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
#include "test/unit/event/await.hpp"
#include "test/unit/tls/fixture.hpp"

using namespace cx;
using namespace cx::engine;

namespace {

// The agent's server configuration: its certificate from `leaf`, peers verified against `ca`.
std::shared_ptr<tls::Config> agent_tls(test::TlsFixture& pki, const std::string& leaf,
                                       const std::string& ca) {
  auto cfg = tls::Config::server(pki.creds(leaf, ca), tls::PeerCheck::required);
  REQUIRE(cfg.ok());
  return *cfg;
}

// What the peer on the agent's port does.
enum class Peer {
  nothing,       // nothing listens
  silent_tcp,    // accepts TCP and never speaks (no TLS)
  hang_up,       // accepts TCP and closes at once
  stranger,      // a TLS server whose certificate comes from another CA
  silent_agent,  // completes TLS, reads the request, never answers
  refusing_agent // answers 403 {"error":"serial mismatch"}
};

AgentReply exchange(test::TlsFixture& pki, Peer peer, uint64_t timeout_ms) {
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
    o.tls = peer == Peer::stranger ? agent_tls(pki, "stranger", "other")
                                   : agent_tls(pki, "server", "ca");
    http::ServerHooks hooks;
    hooks.request = [peer](const std::shared_ptr<http::Connection>& c, http::Request&) {
      if (peer == Peer::refusing_agent) c->respond(403, R"({"error":"serial mismatch"})");
    };
    server = std::make_unique<http::Server>(loop, o, hooks);
    REQUIRE(server->listen().ok());
    port = server->port();
  }
  auto client = AgentClient::create(pki.dir / "client.crt", pki.dir / "client.key",
                                    pki.dir / "ca.crt", timeout_ms, nullptr);
  REQUIRE(client.ok());
  return test::await<AgentReply>(loop, [&](auto deliver) {
    return (*client)->call(loop, "127.0.0.1:" + std::to_string(port), 0, "POST", "/run", "{}",
                           deliver);
  });
}

} // namespace

TEST_CASE("agent client: failures on the wire become the original's texts and our states",
          "[engine]") {
  log::init("test", log::Sink::capture);
  test::TlsFixture pki;
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
      // An agent that hangs up during the handshake (over its connection cap) is reported as
      // that, not as a certificate problem (issue 11, defect 5).
      {Peer::hang_up, ErrorKind::tls_closed,
       "TLS handshake with '127.0.0.1' failed - the agent closed the connection during the "
       "handshake (overloaded, or not accepting this address?)",
       "TLS handshake with '127.0.0.1' failed - the agent closed the connection during the "
       "handshake (overloaded, or not accepting this address?)",
       HostState::error},
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
    AgentReply reply = exchange(pki, r.peer, 300);
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
