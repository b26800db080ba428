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
//  4. one HTTP request, answered HTTP/1.0 and closed; the map gate and the handlers of §3.4.
// SIGHUP swaps in a freshly loaded State; a reload that fails keeps the old one. Requests in
// flight keep the State they started with.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/rate_limit.hpp"
#include "agent/state.hpp"
#include "event/loop.hpp"
#include "event/process.hpp"
#include "http/server.hpp"
#include "tls/tls.hpp"

namespace cx::agent {

// Facts about this agent that do not change while it runs.
struct Identity {
  std::string host;    // host_fqdn()
  std::string version; // cx::version()
  std::string expiry;  // notAfter of the served certificate, OpenSSL text form, or "unknown"
};

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
  bool reload();
  // SIGTERM: stop accepting; `on_idle` runs once no request is being handled any more.
  void drain(std::function<void()> on_idle);

  // Requests being handled (connections past the handshake, and runs whose client left).
  size_t live() const { return *live_; }
  std::shared_ptr<const State> state() const { return state_; }

  struct Job;
  struct PeerInfo;

private:
  bool admit(const event::SockAddr& peer);
  void handshake_failed(const event::SockAddr& peer, const std::string& reason);
  bool ready(const std::shared_ptr<http::Connection>& conn);
  void on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req);
  void on_bad_request(const std::shared_ptr<http::Connection>& conn,
                      const http::RequestParser& parser);

  // Handlers (§3.4). Each answers the connection, now or when its work completes.
  void handle_run(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                  const http::Request& req);
  void handle_ping(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                   const http::Request& req);
  void handle_capabilities(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer);
  void handle_result(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                     const std::string& reqid);
  void handle_rotate(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                     const http::Request& req);
  void handle_renew(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                    const http::Request& req);
  void handle_renew_complete(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                             const http::Request& req);

  // The map gate: the caller's dispatcher id, or nullptr after answering 403 serial mismatch.
  const std::string* gate(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                          const std::string& reqid_for_log);
  void record_refusal(const std::string& ip);

  // /run after the allowlist and the hook.
  void run_authorised(std::shared_ptr<Job> job);
  void run_async(std::shared_ptr<Job> job);
  void finish_run(const std::shared_ptr<Job>& job, int exit, std::string out, std::string err,
                  bool truncated, bool timed_out, std::optional<std::string> error);
  void drop_job(uint64_t id);
  void bury(std::shared_ptr<void> thing);

  RateLimiter::Settings limiter_settings() const;
  void check_idle();

  event::Loop& loop_;
  Paths paths_;
  std::shared_ptr<State> state_;
  Identity identity_;
  RateLimiter limiter_;
  // Shared with the per-request slots, which may outlive neither this object nor the loop.
  std::shared_ptr<size_t> live_ = std::make_shared<size_t>(0);
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  uint64_t next_job_ = 1;
  std::map<int, std::unique_ptr<event::Process>> supervisors_;
  std::vector<std::shared_ptr<void>> graveyard_;
  event::Timer reaper_;
  event::Timer idle_poll_;
  std::function<void()> on_idle_;
  bool draining_ = false;
  std::unique_ptr<http::Server> http_;
};

// `ctrl-exec-agent serve`: the startup order of §1.3 (config, profile warning, trust files,
// paired check, TLS, listen, `start` log) and the loop. Returns the exit status: 78 for a
// configuration error or an unpaired agent, 1 when the TLS files cannot be used or the port
// cannot be bound, 0 after SIGTERM/SIGINT.
int serve(const Paths& paths);

} // namespace cx::agent
