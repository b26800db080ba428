// The agent's metrics and their listener; see metrics.hpp.
#include "agent/metrics.hpp"

#include "base/version.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

AgentMetrics::AgentMetrics()
    : accepted_(registry_
                    .counter("ctrl_exec_agent_connections_accepted_total",
                             "Connections accepted on the agent port (after admission).")
                    .at({})),
      requests_(registry_.counter("ctrl_exec_agent_requests_total",
                                  "Requests answered on the agent port, by route and HTTP status.",
                                  {"route", "code"})),
      runs_(registry_.counter("ctrl_exec_agent_runs_total",
                              "Synchronous runs ended, by exit class: 0, nonzero, error (exit "
                              "-1: the script could not run), timeout (script_timeout).",
                              {"exit"})),
      refusals_(registry_.counter("ctrl_exec_agent_refusals_total",
                                  "Connections and requests refused, by the reason logged.",
                                  {"reason"})),
      rate_blocks_(registry_.counter("ctrl_exec_agent_rate_limit_blocks_total",
                                     "Source addresses blocked by the rate limiter.", {"reason"})),
      live_(registry_
                .gauge("ctrl_exec_agent_requests_in_progress",
                       "Requests being handled, runs whose client left included.")
                .at({})) {
  registry_.gauge("ctrl_exec_build_info", "The running version.", {"version"})
      .with({version()})
      .set(1);
  for (const char* c : {"0", "nonzero", "error", "timeout"})
    runs_.with({c});
}

void AgentMetrics::run_finished(int exit, bool timed_out) {
  const char* c = timed_out ? "timeout" : exit == 0 ? "0" : exit < 0 ? "error" : "nonzero";
  runs_.with({c}).inc();
}

std::string AgentMetrics::scrape(const http::ServerStats& stats, size_t live) {
  accepted_.set_total(stats.accepted);
  // What the HTTP server turned away itself, under the actions of its crowding log lines.
  refusals_.with({"conn-refused"}).set_total(stats.refused);
  refusals_.with({"conn-shed"}).set_total(stats.shed);
  refusals_.with({"request-timeout"}).set_total(stats.timed_out);
  live_.set(static_cast<double>(live));
  return registry_.text();
}

MetricsListener::MetricsListener(event::Loop& loop, std::string bind_ip, int port,
                                 std::function<std::string()> scrape)
    : scrape_(std::move(scrape)) {
  http::ServerOptions o;
  o.bind_ip = std::move(bind_ip);
  o.port = port;
  o.backlog = 64;
  o.handshake_timeout_ms = 5000;
  o.request_timeout_ms = 5000;
  o.allow_keep_alive = false;
  o.limits.max_body = 1024;
  o.tuning.admission.max_connections = 16;
  o.tuning.admission.max_pending_per_ip = 8;
  o.tuning.head_timeout_ms = 5000;
  o.tuning.body_timeout_ms = 5000;
  http::ServerHooks h;
  h.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    if (r.method == "GET" && r.path == "/metrics")
      c->respond(200, scrape_(), false, metrics::kContentType);
    else
      c->respond(404, proto::body::not_found(), false);
  };
  http_ = std::make_unique<http::Server>(loop, std::move(o), std::move(h));
}

MetricsListener::~MetricsListener() {
  http_.reset();
}

Status MetricsListener::listen() {
  return http_->listen();
}

} // namespace cx::agent
