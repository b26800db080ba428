// The API's metrics; see metrics.hpp.
#include "api/metrics.hpp"

#include "api/api.hpp"
#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/version.hpp"
#include "state/run_store.hpp"

namespace cx::api {

namespace {

// Seconds, from a LAN round trip with a resumed session to a script that runs for minutes.
const std::vector<double> kRttBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,     2.5,  5,     10,   30,  60,   300};

// "/run" -> "run", "/result/<reqid>" -> "result".
std::string_view op_name(std::string_view path) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return path.substr(0, path.find('/'));
}

size_t count_run_records() {
  auto names = list_dir(paths::runs_dir());
  if (!names.ok()) return 0;
  size_t n = 0;
  for (const std::string& file : *names) {
    std::string_view name = state::RunStore::record_name(file);
    if (!name.empty() && state::is_run_reqid(name)) ++n;
  }
  return n;
}

} // namespace

ApiMetrics::ApiMetrics()
    : requests_(registry_.counter("ctrl_exec_api_requests_total",
                                  "API requests answered, by route and HTTP status.",
                                  {"route", "code"})),
      host_results_(registry_.counter(
          "ctrl_exec_api_host_results_total",
          "Per-host results of exchanges with agents, by operation and host state.",
          {"op", "state"})),
      rtt_(registry_
               .histogram("ctrl_exec_api_agent_rtt_seconds",
                          "Round-trip time of exchanges with agents, failed ones included.", {},
                          kRttBuckets)
               .at({})),
      handshakes_(registry_.counter("ctrl_exec_api_tls_handshakes_total",
                                    "TLS handshakes with agents, full or resumed.", {"mode"})),
      fan_outs_(
          registry_.gauge("ctrl_exec_api_fanouts_in_flight", "Fan-outs to agents in progress.")
              .at({})),
      registry_size_(
          registry_.gauge("ctrl_exec_api_registry_agents", "Agents in the registry.").at({})),
      run_records_(
          registry_.gauge("ctrl_exec_api_run_records", "Records in the run store.").at({})) {
  registry_.gauge("ctrl_exec_build_info", "The running version.", {"version"})
      .with({version()})
      .set(1);
  handshakes_.with({"full"});
  handshakes_.with({"resumed"});
}

void ApiMetrics::answered(std::string_view route, int code) {
  requests_.with({route, std::to_string(code)}).inc();
}

void ApiMetrics::host_result(std::string_view agent_path, const engine::HostResult& r) {
  host_results_.with({op_name(agent_path), engine::state_name(r.state)}).inc();
  if (r.rtt_us > 0) rtt_.observe(static_cast<double>(r.rtt_us) / 1e6);
}

std::string ApiMetrics::scrape(Api& api) {
  auto tls = api.engine().client_counters();
  handshakes_.with({"full"}).set_total(tls.full_handshakes);
  handshakes_.with({"resumed"}).set_total(tls.resumed_handshakes);
  fan_outs_.set(static_cast<double>(api.engine().fan_outs_in_flight()));
  registry_size_.set(static_cast<double>(api.registry().list_hostnames().size()));
  run_records_.set(static_cast<double>(count_run_records()));
  return registry_.text();
}

} // namespace cx::api
