// The agent's 7443 server (agent-and-wire §3-4): one process, one libuv loop, every connection
// and every script a handle on it; no fork per connection.
//
// The pipeline of a connection, in order:
//  1. admission, before TLS, from the TCP peer address: `allowed_ips` (ip-block) and a cap on
//     open connections (overload);
//  2. the TLS handshake, which requires a client certificate chaining to `ca` (the original
//     accepted clients without one, A§3.1 QUIRK); a failure is logged (tls-failure), counted by
//     the rate limiter, and never stops the server (A§3.2 QUIRK);
//  3. after the handshake: the rate-limit block (a blocked IP is still served when its
//     certificate is in the trusted map), the cap on concurrent requests (max_children), and
//     the revocation list (403 before anything is read);
//  4. one HTTP request, answered HTTP/1.0 and closed, dispatched through the route table
//     (routes.hpp) to its handler (handlers.hpp), which works with the shared Context.
// SIGHUP swaps in a freshly loaded State; a reload that fails keeps the old one. Requests in
// flight keep the State they started with.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/context.hpp"
#include "event/loop.hpp"
#include "http/server.hpp"
#include "tls/tls.hpp"

namespace cx::agent {

struct ServerSettings {
  std::string bind_ip = "0.0.0.0";
  int port = 0; // agent.conf `port`; 0 picks a free port (tests)
  uint64_t handshake_timeout_ms = 10000;
  uint64_t request_timeout_ms = 30000;
};

class AgentServer {
public:
  AgentServer(event::Loop& loop, Paths paths, std::shared_ptr<State> state,
              std::shared_ptr<tls::Config> tls, Identity identity, ServerSettings settings);
  ~AgentServer();
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  Status listen();
  int port() const { return http_->port(); }

  // SIGHUP: reload everything from disk; on failure keep the current state and log why.
  // Returns whether the new state was swapped in.
  bool reload() { return ctx_.reload(); }
  // SIGTERM: stop accepting; `on_idle` runs once no request is being handled any more.
  void drain(std::function<void()> on_idle);

  // Requests being handled (connections past the handshake, and runs whose client left).
  size_t live() const { return ctx_.live(); }
  std::shared_ptr<const State> state() const { return ctx_.state(); }

private:
  bool admit(const event::SockAddr& peer);
  bool ready(const std::shared_ptr<http::Connection>& conn);
  void on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req);
  void check_idle();

  Context ctx_;
  event::Timer idle_poll_;
  std::function<void()> on_idle_;
  bool draining_ = false;
  std::unique_ptr<http::Server> http_;
};

} // namespace cx::agent
