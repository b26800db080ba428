// The CLI's human output for dispatch results (dispatcher-and-api §4.3-§4.6, §4.16-§4.18),
// byte for byte as the original prints it. Pure functions over result objects, so each rule
// is a unit-test row.
#pragma once

#include <string>
#include <vector>

#include "json/json.hpp"

namespace cx::engine {

// `==> host[ (reported)]  [OK|FAIL  exit:N  rtt  req:R]` blocks, in the order given, each
// with its ERROR line and its output; without_output for --follow, which showed it already.
std::string format_run_results(const std::vector<const json::Value*>& results,
                               bool with_output = true);
// The ping table: header, 85 dashes, one row per result.
std::string format_ping_results(const std::vector<const json::Value*>& results);
// "Submitted async run  req:R", one line per host, and the status hint.
std::string format_async_submit(const std::string& reqid,
                                const std::vector<const json::Value*>& results);
// A run record as `status`/`wait` print it.
std::string format_status(const json::Value& record);

} // namespace cx::engine
