// The API's Prometheus metrics (GET /metrics): what the server counts as it goes, on its loop,
// and what is read only when scraped. docs/COMPATIBILITY.md lists them; none is the original's.
#pragma once

#include <string>
#include <string_view>

#include "engine/result.hpp"
#include "metrics/metrics.hpp"

namespace cx::api {

class Api;

class ApiMetrics {
public:
  ApiMetrics();
  ApiMetrics(const ApiMetrics&) = delete;
  ApiMetrics& operator=(const ApiMetrics&) = delete;

  // An answer sent: `route` is the route's method and documented path ("GET /status/{reqid}"),
  // or "unmatched" / "malformed".
  void answered(std::string_view route, int code);
  // One host's result of an exchange with an agent, from the engine (Engine::observe_results).
  void host_result(std::string_view agent_path, const engine::HostResult& r);
  // The text exposition, with the gauges read from `api` now.
  std::string scrape(Api& api);

private:
  metrics::Registry registry_;
  metrics::Family<metrics::Counter>& requests_;
  metrics::Family<metrics::Counter>& host_results_;
  metrics::Histogram& rtt_;
  metrics::Family<metrics::Counter>& handshakes_;
  metrics::Gauge& fan_outs_;
  metrics::Gauge& registry_size_;
  metrics::Gauge& run_records_;
};

} // namespace cx::api
