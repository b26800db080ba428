// What the agent's 7443 handlers work with (agent-and-wire §3.4): the request as a Call (its
// client, its peer, its body), and the Context they share: the loop, who this agent is, the
// loaded State that SIGHUP swaps, the rate limiter, the trusted-map gate, the auth hook and
// the requests still pending after their handler returned. The server (server.hpp) builds a
// Call per request and dispatches it through the route table (routes.hpp); tests build Calls
// with a fake Client.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "agent/metrics.hpp"
#include "agent/rate_limit.hpp"
#include "agent/state.hpp"
#include "event/loop.hpp"
#include "event/process.hpp"
#include "hook/gate.hpp"

namespace cx::agent {

// Facts about this agent that do not change while it runs.
struct Identity {
  std::string host;    // host_fqdn()
  std::string version; // cx::version()
  std::string expiry;  // notAfter of the served certificate, OpenSSL text form, or "unknown"
};

// The client of one request, as a handler answers it: the HTTP connection in the server, a
// fake in tests. Answering a client that has gone away does nothing.
class Client {
public:
  virtual ~Client() = default;
  // Answers the request; the connection then ends (one request per connection).
  virtual void respond(int status, std::string_view body) = 0;
  // A streamed answer (ours: live run output): the head with `content_type` and no length,
  // then the body in pieces, ended by end_stream() (the connection then ends).
  virtual void begin_stream(int status, std::string_view content_type) = 0;
  virtual void send(std::string bytes) = 0;
  virtual void end_stream() = 0;
  // Drops the connection with no answer.
  virtual void abort() = 0;
  // Runs once when the client has gone, whether after an answer or before one.
  virtual void on_close(std::function<void()> fn) = 0;
};

// The caller, from the TCP peer and the TLS handshake.
struct Peer {
  std::string ip;
  std::string serial; // lower-case hex as the certificate has it (ENVEXEC_DISPATCHER_SERIAL)
  std::string key;    // canon(serial), computed once (A§4.2.1)
  // Counts the request as live (max_children, draining) while anyone holds it.
  std::shared_ptr<void> slot;
};

// One request as a handler gets it.
struct Call {
  std::shared_ptr<Client> client;
  Peer peer;
  std::string body;
  std::string param; // the route's path parameter (/result/<reqid>), "" for the others
};

// A request still being worked on after its handler returned (waiting for the auth hook or a
// script). The Context owns it from authorise() until drop().
struct Pending {
  Pending(event::Loop& loop, const Call& call, std::string dispatcher_id)
      : client(call.client), peer(call.peer), dispatcher(std::move(dispatcher_id)), gate(loop) {}
  virtual ~Pending() = default;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  uint64_t id = 0; // 0 until tracked
  std::shared_ptr<Client> client;
  Peer peer; // its slot keeps the request live until the Pending is destroyed
  std::string dispatcher;
  hook::Gate gate;
};

// Values from the request (script names, reqids) go into log lines as the original writes
// them, bounded in length. (Control characters are made harmless by log::format_line, for
// every line.)
std::string log_safe(std::string_view s);
// A reqid as the REQID field shows it: "(none)" when empty.
std::string reqid_field(const std::string& reqid);

class Context {
public:
  Context(event::Loop& loop, Paths paths, std::shared_ptr<const State> state, Identity identity);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  event::Loop& loop() { return loop_; }
  const Identity& identity() const { return identity_; }
  // The state requests are served from now; a request that waits keeps the one it started with.
  const std::shared_ptr<const State>& state() const { return state_; }

  // SIGHUP: reload everything from disk; on failure keep the current state and log why.
  // Returns whether the new state was swapped in.
  bool reload();
  // Re-reads only the trusted map and the revocation list into a copy of the current state
  // (after /rotate-serial rewrote the map while agent.conf or the allowlist cannot be loaded).
  void reload_trust();

  // The rate limiter (agent-and-wire §4.6) at the current time.
  void record_failure(const std::string& ip, RateLimiter::Failure kind);
  bool blocked(const std::string& ip);

  // What the agent counts for GET /metrics (metrics_bind).
  AgentMetrics& metrics() { return metrics_; }

  // A slot of a live request: live() counts the slots still held.
  std::shared_ptr<void> take_slot();
  size_t live() const { return *live_; }

  // The map gate: the caller's dispatcher id, or nullptr after logging serial-reject, counting
  // the refusal and answering 403 serial mismatch.
  const std::string* trusted_dispatcher(const Call& call, const std::string& reqid_for_log);

  // The auth hook, then `decided` (agent-and-wire §4.7). `p` is tracked from here until drop().
  // With no auth_hook configured `decided` runs at once with an allow; otherwise the hook gets
  // `req` (source_ip, dispatcher and dispatcher_serial filled in from `p`) and `decided` runs
  // from the loop with its decision. A client that leaves while the hook runs drops `p`, which
  // kills the hook: `decided` never runs. `decided` answers and drops `p`, or hands it on.
  template <typename P>
  void authorise(const std::shared_ptr<P>& p, hook::Request req,
                 std::type_identity_t<std::function<void(P&, const hook::Decision&)>> decided) {
    authorise_pending(p, std::move(req),
                      [decided = std::move(decided)](Pending& q, const hook::Decision& d) {
                        decided(static_cast<P&>(q), d);
                      });
  }
  // Ends a pending request: its hook is cancelled and it is destroyed on a later iteration.
  // Unknown ids (0, or dropped already) are ignored.
  void drop(uint64_t id);
  size_t pending() const { return pending_.size(); }
  // Runs after each drop (the server's idle check while draining).
  void on_drop(std::function<void()> fn) { on_drop_ = std::move(fn); }

  // Starts a detached process (an async job's supervisor) and keeps it until it exits, so that
  // its stdin is written in full and its exit is reaped; it outlives the agent. Returns its
  // pid, or 0 when it could not be started.
  int start_detached(event::ProcessOptions options);

private:
  using Decided = std::function<void(Pending&, const hook::Decision&)>;
  void authorise_pending(const std::shared_ptr<Pending>& p, hook::Request req, Decided decided);
  RateLimiter::Settings limiter_settings() const;

  event::Loop& loop_;
  Paths paths_;
  std::shared_ptr<const State> state_;
  Identity identity_;
  RateLimiter limiter_;
  AgentMetrics metrics_;
  // Shared with the slots, which may outlive this object.
  std::shared_ptr<size_t> live_ = std::make_shared<size_t>(0);
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
  uint64_t next_id_ = 1;
  std::function<void()> on_drop_;
  std::map<int, std::unique_ptr<event::Process>> detached_;
};

} // namespace cx::agent
