// The agent's Prometheus metrics (ours, docs/COMPATIBILITY.md): what the 7443 server counts on
// its loop, and the optional plain-HTTP listener (agent.conf metrics_bind) that serves them as
// GET /metrics on the same loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "event/loop.hpp"
#include "http/server.hpp"
#include "metrics/metrics.hpp"

namespace cx::agent {

class AgentMetrics {
public:
  AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // An answer on 7443: `route` is the route's method and path ("POST /run", "GET /result/"),
  // "unmatched" or "malformed".
  void answered(std::string_view route, int code) {
    requests_.with({route, std::to_string(code)}).inc();
  }
  // A synchronous run that ended: exit 0, another exit, -1 (could not run), or killed at
  // script_timeout.
  void run_finished(int exit, bool timed_out);
  // A connection or request turned away, by the action of its log line (ip-block,
  // revoked-cert, serial-reject, overload, tls-failure, deny, ...).
  void refused(std::string_view reason) { refusals_.with({reason}).inc(); }
  // The rate limiter started blocking an address (reason volume or probe).
  void rate_blocked(std::string_view reason) { rate_blocks_.with({reason}).inc(); }

  // The text, with what the HTTP server counted itself copied in.
  std::string scrape(const http::ServerStats& stats, size_t live);

private:
  metrics::Registry registry_;
  metrics::Counter& accepted_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& runs_;
  metrics::Family<metrics::Counter>& refusals_;
  metrics::Family<metrics::Counter>& rate_blocks_;
  metrics::Gauge& live_;
};

// GET /metrics over plain HTTP, on `bind_ip`:`port`; any other request is 404. Connections are
// bounded and short-lived; nothing here reads the agent's TLS files.
class MetricsListener {
public:
  MetricsListener(event::Loop& loop, std::string bind_ip, int port,
                  std::function<std::string()> scrape);
  ~MetricsListener();
  MetricsListener(const MetricsListener&) = delete;
  MetricsListener& operator=(const MetricsListener&) = delete;

  Status listen();
  int port() const { return http_->port(); }
  void stop_accepting() { http_->stop_accepting(); }

private:
  std::function<std::string()> scrape_;
  std::unique_ptr<http::Server> http_;
};

} // namespace cx::agent
