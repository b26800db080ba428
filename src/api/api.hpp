// ctrl-exec-api: the HTTP JSON API server (dispatcher-and-api §6), one process on one event
// loop. Api owns the listener, the auth gate, the engine and the requests in progress; an
// Exchange is one request from the moment it is read until it is answered.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/metrics.hpp"
#include "api/run_book.hpp"
#include "base/exit_codes.hpp"
#include "base/status.hpp"
#include "conf/dispatcher.hpp"
#include "engine/engine.hpp"
#include "event/loop.hpp"
#include "hook/gate.hpp"
#include "hook/hook.hpp"
#include "http/server.hpp"
#include "state/registry.hpp"

namespace cx::api {

class Api;

// Limits and timeouts of the server itself. Every key but api_max_children is ours (the
// original has no such bounds); a Perl dispatcher ignores them. See docs/COMPATIBILITY.md.
struct Tuning {
  size_t max_busy = 64; // api_max_children: requests in progress at once
  // api_max_connections: open connections, idle keep-alive ones included; 4 x max_busy unless
  // set. When full, the oldest connection not handling a request is closed for the new one.
  size_t max_connections = 256;
  size_t max_connections_per_ip = 64;  // per address, connections not handling a request
  size_t max_handshakes_per_ip = 8;    // per address, TLS handshakes at once; more wait
  uint64_t request_timeout_ms = 30000; // to receive a whole request (and the TLS handshake)
  uint64_t head_timeout_ms = 10000;    // for its request line and headers
  uint64_t body_timeout_ms = 10000;    // for its body, after the headers
  uint64_t keep_alive_idle_ms = 10000; // idle time between keep-alive requests
  uint64_t shutdown_grace_ms = 10000;  // to finish requests in progress after SIGTERM
  // api_metrics_open: GET /metrics skips the pre-route auth gate, only while the API is bound
  // to a loopback address.
  bool metrics_open = false;
};

// The tuning a config asks for; bad values keep the default and add a warning.
Tuning tuning_from(const conf::DispatcherConfig& config,
                   std::vector<conf::ConfigWarning>& warnings);

class Exchange : public std::enable_shared_from_this<Exchange> {
public:
  Exchange(Api& api, uint64_t id, std::shared_ptr<http::Connection> conn, http::Request& req);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  Api& api;
  const uint64_t id;
  std::string method; // upper case
  std::string path;   // as sent, query string included
  std::string body;
  std::string peer_ip;
  std::string bearer; // the Authorization: Bearer token
  std::string param;  // the route's path parameter
  std::string route;  // for the metrics: "GET /status/{reqid}", or "unmatched"
  // The Idempotency-Key header (POST /run reads it): absent, a key, or why it is unusable.
  Result<std::optional<std::string>> idempotency_key;

  // Answers once; later calls do nothing. The Exchange is released afterwards.
  void respond(int code, std::string_view body, std::string_view content_type = "application/json");
  // {"ok":false,"error":E,"detail":D}
  void fail(int code, std::string_view error, std::string_view detail = {});
  bool answered() const { return answered_; }

  // Asks the auth policy (hook or api_auth_default) with `req`, whose source_ip is set here.
  // `then` runs from the loop, and only while this Exchange is alive (its hook::Gate).
  using DecisionFn = std::function<void(Exchange&, const hook::Decision&)>;
  void authorize(hook::Request req, DecisionFn then);
  // A 403 with the denial body (or the generic one).
  void deny(const hook::Decision& d);

  // A callback for asynchronous work that runs only while this Exchange is alive: if the
  // client goes away first, the work's outcome is dropped.
  template <typename F> auto guard(F fn) {
    std::weak_ptr<Exchange> weak = weak_from_this();
    return [weak, fn = std::move(fn)](auto&&... a) {
      if (auto self = weak.lock()) fn(*self, std::forward<decltype(a)>(a)...);
    };
  }

  // A streamed answer (ours: /run with "stream": true). begin_stream() sends the head, 200
  // with application/x-ndjson, or text/event-stream when the client's Accept asked for it;
  // event() sends one event (an NDJSON line, or an SSE `event: <name>` with its `data:`);
  // end_stream() sends the final object (SSE: event `summary`) and closes the connection,
  // which counts as the answer. Events after the client has gone are dropped.
  void begin_stream();
  void event(std::string_view name, const std::string& json);
  void end_stream(const std::string& json);
  bool streaming() const { return streaming_; }
  // Milliseconds since the stream began: the `t` of its events.
  uint64_t stream_ms() const;

  // Keep this Exchange when the client disconnects, so that work with lasting effects (a run
  // and its run-store record) completes; the answer is then dropped.
  void survive_disconnect() { survive_disconnect_ = true; }
  bool survives_disconnect() const { return survive_disconnect_; }

private:
  std::shared_ptr<http::Connection> conn_;
  hook::Gate gate_;
  bool answered_ = false;
  bool survive_disconnect_ = false;
  bool sse_ = false; // the client accepts text/event-stream
  bool streaming_ = false;
  uint64_t stream_started_ms_ = 0;
};

class Api {
public:
  Api(event::Loop& loop, conf::DispatcherConfig config, Tuning tuning);
  ~Api();
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // Sets up TLS (when api_cert and api_key exist), the engine and the listener, and installs
  // the SIGTERM/SIGINT handlers. Failures are the startup messages of §6.1.
  Status start();
  // The exit status that fits the failure start() returned.
  int start_exit_code() const { return start_exit_code_; }
  // The port actually bound (for api_port 0 in tests).
  int port() const;
  bool tls() const { return tls_ != nullptr; }
  // Stop accepting, let requests in progress finish within the grace period, then close
  // everything, log api-stop and leave the loop. A second call stops at once.
  void begin_stop();
  // Runs once the server has fully stopped.
  void on_stopped(std::function<void()> fn) { on_stopped_ = std::move(fn); }

  const conf::DispatcherConfig& config() const { return config_; }
  const Tuning& tuning() const { return tuning_; }
  event::Loop& loop() { return loop_; }
  hook::Policy policy() const;
  state::Registry& registry() { return registry_; }
  // The engine that talks to agents, with TLS sessions kept in memory. It does not renew agent
  // certs (as the original's API).
  engine::Engine& engine() { return *engine_; }
  // The API's lock in the run store and its keyed runs in flight.
  RunBook& runs() { return runs_; }
  ApiMetrics& metrics() { return metrics_; }
  // Whether GET /metrics skips the pre-route gate (api_metrics_open on a loopback bind).
  bool metrics_open() const { return metrics_open_; }
  bool stopping() const { return stopping_; }

  // Requests being handled, and connections open (for tests and figures).
  size_t exchanges() const { return exchanges_.size(); }
  size_t open_connections() const { return server_ ? server_->open_connections() : 0; }

  // Called by an Exchange once it is answered, or by the server when its client is gone.
  void release(uint64_t id);

private:
  void on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req);
  void on_bad_request(const std::shared_ptr<http::Connection>& conn,
                      const http::RequestParser& parser);
  void route(Exchange& ex);
  void check_drained();
  void finish_stop();

  event::Loop& loop_;
  conf::DispatcherConfig config_;
  Tuning tuning_;
  state::Registry registry_;
  std::shared_ptr<tls::Config> tls_;
  std::unique_ptr<engine::Engine> engine_;
  RunBook runs_;
  ApiMetrics metrics_;
  bool metrics_open_ = false;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<event::SignalWatcher> sigterm_, sigint_;
  std::unique_ptr<event::Timer> grace_timer_;
  event::Timer drain_timer_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::shared_ptr<Exchange>> exchanges_;
  int start_exit_code_ = 1;
  bool stopping_ = false;
  bool stopped_ = false;
  std::function<void()> on_stopped_;
};

// The applet: loads the config, serves until SIGTERM/SIGINT, returns the exit status.
int run(const std::string& config_path);

} // namespace cx::api
