// The progress line of a multi-host `ced run`/`ping` on a terminal (ours; docs/COMPATIBILITY.md):
// one line on stderr, rewritten in place as hosts finish and every second, with done/total,
// ok/failed/timeout and the elapsed time, erased before the results are printed. It exists
// only when stderr is a terminal, so output that a script reads is byte for byte the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/engine.hpp"
#include "engine/rollout.hpp"
#include "event/loop.hpp"

namespace cx::engine {

// The line's text for these counts (no control characters), e.g.
// "ced: 12/300 done  ok 10  failed 1  timeout 1  3.2s".
std::string progress_text(size_t done, size_t total, size_t ok, size_t failed, size_t timeout,
                          uint64_t elapsed_ms);

class Progress {
public:
  // Draws on `fd` (stderr) for the results of `path` ("/run", "/ping") that `engine` reports,
  // `total` hosts in all. Does nothing at all unless `fd` is a terminal, `enabled` and total > 1.
  Progress(event::Loop& loop, Engine& engine, std::string path, RolloutKind kind, size_t total,
           bool enabled, int fd = 2);
  ~Progress(); // erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool active() const { return active_; }
  // Erases the line now (before output goes to the terminal); a later result draws it again.
  void erase();

private:
  void on_result(const HostResult& r);
  void draw();

  Engine& engine_;
  std::string path_;
  RolloutKind kind_;
  size_t total_ = 0, done_ = 0, ok_ = 0, failed_ = 0, timeout_ = 0;
  uint64_t started_ms_ = 0, drawn_ms_ = 0;
  int fd_ = 2;
  bool active_ = false, shown_ = false;
  std::unique_ptr<event::Timer> tick_;
};

} // namespace cx::engine
