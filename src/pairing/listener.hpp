// The pairing listener on port 7444 (dispatcher-and-api §8, agent-and-wire §5): TLS without
// client certificates, POST /pair validated and queued, the first response ("pending") at
// once and the second (approved, denied or the timeout) when an answer file appears, the
// per-IP rate limit, the interactive prompt, and the stop conditions. One process and one
// libuv loop serve every connection; the queue files are the interface to `approve`/`deny`
// in other processes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/paths.hpp"
#include "base/status.hpp"
#include "event/loop.hpp"
#include "http/server.hpp"
#include "pairing/rate_limiter.hpp"
#include "pairing/stdin_lines.hpp"
#include "state/pairing_queue.hpp"

namespace cx::pairing {

// Work the listener runs on its loop while pairing mode is up: the original forks a
// cert-check child that sleeps 5 s, then checks and rotates the dispatcher cert, broadcasts
// the serial and expires stale agents, every cert_check_interval (dispatcher-and-api §4.8,
// §9.1 step 6). That work belongs to src/engine; the applet hands it in here. `run` gets the
// loop so its network work can be asynchronous; it must not block for long. Work still in
// flight when pairing mode stops is abandoned.
struct PeriodicTask {
  uint64_t first_ms = 5000;
  uint64_t interval_ms = 14400 * 1000;
  std::function<void(event::Loop&)> run;
};

struct ListenerOptions {
  std::string bind_ip = "0.0.0.0";
  int port = paths::kPairingPort;  // 0 picks a free port (tests)
  int64_t timeout_s = 600;         // pairing mode stops after this
  std::string cert_path, key_path; // the dispatcher's cert, served without client auth
  std::string queue_dir;
  int64_t max_queue = 10;
  RateLimiter::Options rate;
  // How often waiting connections look for their answer file (the original: 2 s; the files
  // are local, so we look more often).
  uint64_t poll_ms = 250;
  // How long a queued request waits for an answer before "approval timeout".
  uint64_t answer_timeout_ms = 600 * 1000;
  // A client must deliver its whole request within this; a stalled one is dropped.
  uint64_t request_timeout_ms = 30000;
  uint64_t handshake_timeout_ms = 10000;
  uint64_t reverse_dns_timeout_ms = 2000;
  // Read operator commands from stdin when it is a terminal or a pipe.
  bool read_stdin = true;
  // The prompt's a/d: approve or deny a request, printing the outcome; an error is printed
  // as "Approve failed: <e>" / "Deny failed: <e>".
  std::function<Status(const std::string& id)> approve;
  std::function<Status(const std::string& id)> deny;
  std::optional<PeriodicTask> periodic;
  // Where the banner, the prompt and the status lines go (default: stdout, flushed).
  std::function<void(const std::string&)> output;
  // Called once the port is bound (the background child writes its pidfile then).
  std::function<void(int port)> on_listening;
};

enum class StopReason { timeout, quit, signal };

class Listener {
public:
  Listener(event::Loop& loop, ListenerOptions opts);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Loads the cert, prepares the queue, binds, prints the banner and starts the timers.
  // Errors read "Cannot start pairing server: <reason>".
  Status start();
  // Stops accepting, answers every waiting agent, prints the stop line, and lets the open
  // connections finish; `on_stopped` runs once they have (or after a short grace period).
  void stop(StopReason why);
  int port() const { return port_; }
  bool interactive() const { return interactive_; }
  std::function<void(StopReason)> on_stopped;

private:
  struct Waiter {
    std::string id;
    std::shared_ptr<http::Connection> conn;
    uint64_t deadline_ms;
  };

  void on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req);
  void on_bad_request(const std::shared_ptr<http::Connection>& conn,
                      const http::RequestParser& parser);
  void enqueue(const std::shared_ptr<http::Connection>& conn, struct QueuedInput in);
  bool queue_full(const std::shared_ptr<http::Connection>& conn);
  void poll_answers();
  void on_command(const std::string& line);
  void act(bool approve, const state::PairingRequest& r);
  std::vector<state::PairingRequest> pending() const;
  void show_prompt();
  void answer(const std::shared_ptr<http::Connection>& conn, std::string_view body);
  void print(const std::string& s);
  void finish_stop();

  event::Loop& loop_;
  ListenerOptions opts_;
  state::PairingQueue queue_;
  RateLimiter limiter_;
  std::unique_ptr<http::Server> server_;
  event::Timer poll_timer_;
  event::Timer deadline_timer_;
  event::Timer periodic_timer_;
  event::Timer drain_timer_;
  StdinLines stdin_;
  std::vector<Waiter> waiters_;
  std::map<uint64_t, std::weak_ptr<http::Connection>> conns_;
  std::set<uint64_t> answered_; // connections whose final response is on its way
  int port_ = 0;                // as bound (kept after the listening socket closes)
  bool interactive_ = false;
  bool stdin_is_tty_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  StopReason reason_ = StopReason::quit;
  event::Liveness alive_; // for callbacks that may outlive us
};

// Runs a listener on its own loop until it stops (timeout, `quit`, SIGINT or SIGTERM).
Result<StopReason> run_listener(ListenerOptions opts);

} // namespace cx::pairing
