// The progress line; see progress.hpp.
#include "engine/progress.hpp"

#include <unistd.h>

#include "base/strings.hpp"
#include "base/time.hpp"

namespace cx::engine {

std::string progress_text(size_t done, size_t total, size_t ok, size_t failed, size_t timeout,
                          uint64_t elapsed_ms) {
  return strprintf("ced: %zu/%zu done  ok %zu  failed %zu  timeout %zu  %.1fs", done, total, ok,
                   failed, timeout, static_cast<double>(elapsed_ms) / 1000.0);
}

Progress::Progress(event::Loop& loop, Engine& engine, std::string path, RolloutKind kind,
                   size_t total, bool enabled, int fd)
    : engine_(engine), path_(std::move(path)), kind_(kind), total_(total), fd_(fd) {
  active_ = enabled && total > 1 && ::isatty(fd) == 1;
  if (!active_) return;
  started_ms_ = monotonic_ms();
  engine_.observe_results([this](std::string_view path, const HostResult& r) {
    if (path == path_) on_result(r);
  });
  tick_ = std::make_unique<event::Timer>(loop);
  tick_->start(
      1000, [this] { draw(); }, 1000);
  tick_->unref(); // the line never keeps the command running
}

Progress::~Progress() {
  if (!active_) return;
  engine_.observe_results(nullptr);
  erase();
}

void Progress::on_result(const HostResult& r) {
  ++done_;
  if (r.state == HostState::timeout)
    ++timeout_;
  else if (result_failed(kind_, r))
    ++failed_;
  else
    ++ok_;
  // At most 20 redraws a second, and always the last one.
  uint64_t now = monotonic_ms();
  if (done_ == total_ || now - drawn_ms_ >= 50) draw();
}

void Progress::draw() {
  drawn_ms_ = monotonic_ms();
  std::string line =
      "\r\033[K" + progress_text(done_, total_, ok_, failed_, timeout_, drawn_ms_ - started_ms_);
  (void)!::write(fd_, line.data(), line.size());
  shown_ = true;
}

void Progress::erase() {
  if (!active_ || !shown_) return;
  static constexpr char kErase[] = "\r\033[K";
  (void)!::write(fd_, kErase, sizeof kErase - 1);
  shown_ = false;
}

} // namespace cx::engine
