// `ced run --follow` (ours; docs/COMPATIBILITY.md): each line of output printed as it arrives,
// prefixed with its host (padded to the longest name, coloured when stdout is a terminal and
// NO_COLOR is not set), stdout lines as "host | line" and stderr lines as "host ! line"; with
// --json, the events of engine/live.hpp, one per line. Hosts whose agent answered whole (the
// original's agent, or ours through the executor) show their output when their result comes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.hpp"
#include "engine/rollout.hpp"

namespace cx::engine {

// Whether --follow colours its host prefixes: stdout is a terminal and NO_COLOR is unset or
// empty (no-color.org).
bool follow_colour(int fd = 1);

class FollowPrinter {
public:
  // `hosts`: every host the command may address (for the prefix width and the colours).
  FollowPrinter(const std::vector<std::string>& hosts, bool json, bool colour);

  // What Engine::run reports, printed as it happens.
  LiveFns live();
  // A batch of a rollout has ended: its event (--json); human output prints its own header.
  void batch(const BatchReport& batch);
  // The prefix of a line of `host` on `stream` ("web1  | "), coloured when asked.
  std::string prefix(const std::string& host, bool is_stdout) const;

private:
  void output(const std::string& host, const proto::RunChunk& chunk, bool live);
  void host_done(const HostResult& result);
  void print_lines(const std::string& host, bool is_stdout, std::string_view data, bool all);
  uint64_t elapsed() const;

  bool json_, colour_;
  size_t width_ = 0;
  std::map<std::string, size_t> colour_of_;
  // A partial line per host and stream, printed when its newline or the host's result comes.
  std::map<std::pair<std::string, bool>, std::string> partial_;
  uint64_t started_ms_;
};

} // namespace cx::engine
