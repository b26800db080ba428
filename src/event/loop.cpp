// Loop, timers, signals and thread-pool work; see loop.hpp.
#include "event/loop.hpp"

#include <signal.h>

namespace cx::event {

std::string uv_error(int code) {
  return uv_strerror(code);
}

Loop::Loop() {
  CX_CHECK(uv_loop_init(&loop_) == 0);
  loop_.data = this;
  CX_CHECK(uv_timer_init(&loop_, &reaper_) == 0);
  reaper_.data = this;
  // The reaper is started only while something is deferred; idle, it keeps no loop alive.
}

Loop::~Loop() {
  // Deferred objects go first: their destructors close the handles they own.
  free_deferred(true);
  // Close whatever is still open and run until every close callback has run: they free the
  // handles' memory, and what adopted handles keep alive. A close callback may destroy
  // objects that close more handles, hence the rounds; uv_loop_close() fails while any
  // handle is left.
  do {
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, &Loop::on_close);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    free_deferred(true); // close callbacks may have deferred more
  } while (uv_loop_close(&loop_) == UV_EBUSY);
  // Every adopted handle was open, so each ran its release above.
  CX_CHECK(adopted_.empty());
}

void Loop::adopt(uv_handle_t* handle, std::function<void()> release) {
  CX_CHECK(handle->loop == &loop_ && !uv_is_closing(handle));
  adopted_[handle] = std::move(release);
}

void Loop::close_adopted(uv_handle_t* handle) {
  CX_CHECK(adopted_.count(handle) == 1);
  if (!uv_is_closing(handle)) uv_close(handle, &Loop::on_close);
}

void Loop::on_close(uv_handle_t* handle) {
  // A handle that is not adopted is closed here only by the loop's destruction; its owner
  // object frees it (owners are meant to be gone by then).
  auto* self = static_cast<Loop*>(handle->loop->data);
  auto it = self->adopted_.find(handle);
  if (it == self->adopted_.end()) return;
  auto release = std::move(it->second);
  self->adopted_.erase(it);
  release();
}

void Loop::arm_reaper() {
  auto* h = reinterpret_cast<uv_handle_t*>(&reaper_);
  if (uv_is_active(h) || uv_is_closing(h)) return;
  uv_timer_start(
      &reaper_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Loop*>(t->data);
        // Calls first: they may hand over more objects to free (those wait a round).
        std::vector<std::function<void()>> calls;
        calls.swap(self->posted_);
        for (auto& fn : calls)
          fn();
        self->free_deferred(false);
      },
      0, 0);
}

void Loop::defer_delete(std::shared_ptr<void> thing) {
  if (!thing) return;
  deferred_.push_back(std::move(thing));
  arm_reaper();
}

void Loop::post(std::function<void()> fn) {
  posted_.push_back(std::move(fn));
  arm_reaper();
}

void Loop::free_deferred(bool all) {
  // A destructor may defer more objects: during a run they wait for the next round (the
  // timer is armed again by defer_delete); at teardown (`all`) they go at once, and posted
  // calls are dropped unrun.
  do {
    std::vector<std::shared_ptr<void>> batch;
    batch.swap(deferred_);
    batch.clear();
    if (all) posted_.clear();
  } while (all && (!deferred_.empty() || !posted_.empty()));
}

void Loop::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

Timer::Timer(uv_loop_t* loop) : h_(new uv_timer_t) {
  uv_timer_init(loop, h_);
  h_->data = this;
}

void Timer::start(uint64_t timeout_ms, std::function<void()> fn, uint64_t repeat_ms) {
  fn_ = std::move(fn);
  uv_timer_start(
      h_,
      [](uv_timer_t* t) {
        if (auto* self = static_cast<Timer*>(t->data)) {
          // A one-shot timer lets go of its callback once fired, so a callback that captured
          // shared owners (even of this timer) forms no cycle. Take it out first: the
          // callback may restart or destroy this timer.
          auto fn = uv_timer_get_repeat(t) == 0 ? std::move(self->fn_) : self->fn_;
          fn();
        }
      },
      timeout_ms, repeat_ms);
}

void Timer::stop() {
  uv_timer_stop(h_);
}

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(h_));
}

SignalWatcher::SignalWatcher(Loop& loop) : h_(new uv_signal_t) {
  uv_signal_init(loop.get(), h_);
  h_->data = this;
}

Status SignalWatcher::start(int signum, std::function<void(int)> fn) {
  fn_ = std::move(fn);
  int rc = uv_signal_start(
      h_,
      [](uv_signal_t* s, int sig) {
        if (auto* self = static_cast<SignalWatcher*>(s->data)) {
          auto fn = self->fn_;
          fn(sig);
        }
      },
      signum);
  if (rc != 0) return error("cannot watch signal " + std::to_string(signum) + ": " + uv_error(rc));
  return {};
}

void SignalWatcher::stop() {
  uv_signal_stop(h_);
}

namespace {
struct WorkReq {
  uv_work_t req;
  std::function<void()> work, done;
};
} // namespace

void queue_work(Loop& loop, std::function<void()> work, std::function<void()> done) {
  auto* w = new WorkReq{{}, std::move(work), std::move(done)};
  w->req.data = w;
  int rc = uv_queue_work(
      loop.get(), &w->req, [](uv_work_t* r) { static_cast<WorkReq*>(r->data)->work(); },
      [](uv_work_t* r, int) {
        auto* self = static_cast<WorkReq*>(r->data);
        self->done();
        delete self;
      });
  CX_CHECK(rc == 0);
}

void ignore_sigpipe() {
  ::signal(SIGPIPE, SIG_IGN);
}

} // namespace cx::event
