// The agent's 7443 server (agent-and-wire §3-4): one process, one libuv loop, every connection
// and every script a handle on it; no fork per connection.
//
// The pipeline of a connection, in order (the limits are in admission.hpp and agent.conf):
//  1. admission at accept, before any crypto, from the TCP peer address: `allowed_ips`
//     (ip-block), the rate-limit block (one connection at a time from a blocked address, for a
//     trusted dispatcher behind it), then the http::Server's caps per address (connections not
//     yet a request, handshakes) and in all (when full, the oldest connection of a peer not
//     known is shed for the new one);
//  2. the TLS handshake, within 10 s, which requires a client certificate chaining to `ca`
//     (the original accepted clients without one, A§3.1 QUIRK); a failure is logged
//     (tls-failure), counted by the rate limiter, and never stops the server (A§3.2 QUIRK);
//  3. trust, right after the handshake: the revocation list (403 before anything is read), the
//     rate-limit block (a blocked IP is still served when its certificate is in the trusted
//     map), then the trusted map: a peer not in it joins a small pool of its own, and once its
//     request line and headers are in, anything but /renew and /renew-complete is answered at
//     once (403, or 404), without reading the body;
//  4. one HTTP request, its head and then its body each within a deadline, answered HTTP/1.0
//     and closed; a complete request takes a slot (max_children) and is dispatched through the
//     route table (routes.hpp) to its handler (handlers.hpp), which works with the shared
//     Context.
// SIGHUP swaps in a freshly loaded State; a reload that fails keeps the old one. Requests in
// flight keep the State they started with.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/admission.hpp"
#include "agent/context.hpp"
#include "event/loop.hpp"
#include "http/server.hpp"
#include "tls/tls.hpp"

namespace cx::agent {

struct ServerSettings {
  std::string bind_ip = "0.0.0.0";
  int port = 0; // agent.conf `port`; 0 picks a free port (tests)
  uint64_t handshake_timeout_ms = 10000;
  // The whole request; the head and the body each have their own deadline in agent.conf.
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
  bool reload();
  // SIGTERM: stop accepting; `on_idle` runs once no request is being handled or on its way
  // any more (connections still arriving are bounded by their deadlines).
  void drain(std::function<void()> on_idle);

  // Requests being handled (complete requests, and runs whose client left).
  size_t live() const { return ctx_.live(); }
  std::shared_ptr<const State> state() const { return ctx_.state(); }
  const http::ServerStats& stats() const { return http_->stats(); }
  // The metrics text for GET /metrics on the metrics listener.
  std::string metrics_text() { return ctx_.metrics().scrape(http_->stats(), ctx_.live()); }

private:
  bool admit(const event::SockAddr& peer);
  bool ready(const std::shared_ptr<http::Connection>& conn);
  bool join_untrusted(const std::shared_ptr<http::Connection>& conn, const Peer& peer);
  bool on_head(const std::shared_ptr<http::Connection>& conn, http::Request& head);
  void on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req);
  void on_closed(http::Connection& conn);
  void check_idle();

  Context ctx_;
  event::Timer idle_poll_;
  std::function<void()> on_idle_;
  bool draining_ = false;
  UntrustedPool untrusted_;
  std::map<uint64_t, std::weak_ptr<http::Connection>> untrusted_conns_;
  std::unique_ptr<http::Server> http_;
};

} // namespace cx::agent
