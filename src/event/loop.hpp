// RAII over libuv: the loop, and the ownership rule for every handle. A handle object owns a
// heap-allocated uv handle; destroying the object calls uv_close and the close callback frees
// the memory, so an object may be destroyed at any time, even inside its own callback as long
// as the callback touches no members afterwards. Destroying the loop closes what is still open
// and runs until every close callback has run.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.hpp"

namespace cx::event {

std::string uv_error(int code); // "connection refused" etc. (uv_strerror, lower-case as libuv)

class Loop {
public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* get() { return &loop_; }
  // Runs until no active handles remain or stop() is called.
  void run();
  void stop() { uv_stop(&loop_); }
  uint64_t now_ms() { return uv_now(&loop_); }

  // For a handle whose owner is gone but which must stay open a while (a killed child that is
  // not reaped yet): the loop keeps `release` and runs it from the handle's close callback,
  // whether close_adopted() closes the handle or the loop's destruction does. `release` frees
  // the handle and whatever it kept alive, so destroying the loop first leaks nothing.
  void adopt(uv_handle_t* handle, std::function<void()> release);
  void close_adopted(uv_handle_t* handle);

  // The one lifetime rule for objects that end inside their own callbacks (a connection that
  // closes, an exchange that answers, a finished fan-out): the owner hands the last reference
  // here and the object is destroyed on a later loop iteration, never under a frame of its
  // own. Whatever is still deferred when the loop is destroyed is destroyed first.
  void defer_delete(std::shared_ptr<void> thing);
  template <typename T> void defer_delete(std::unique_ptr<T> thing) {
    defer_delete(std::shared_ptr<void>(std::move(thing)));
  }
  // Runs `fn` on a later loop iteration (to move on from inside a callback whose object is
  // about to be deferred). Posted calls that have not run when the loop is destroyed are
  // dropped, not run.
  void post(std::function<void()> fn);

private:
  static void on_close(uv_handle_t* handle);
  void arm_reaper();
  void free_deferred(bool all);

  uv_loop_t loop_;
  std::unordered_map<uv_handle_t*, std::function<void()>> adopted_;
  uv_timer_t reaper_;
  std::vector<std::shared_ptr<void>> deferred_;
  std::vector<std::function<void()>> posted_;
};

// Liveness: the one check for a callback that may run after its owner is gone (a handler that
// destroyed its stream, a reverse lookup that finishes after the listener stopped). The owner
// holds a Liveness member; callbacks capture a Watch and return when it reports gone. The
// owner may also end its liveness early (kill) to silence callbacks before it is destroyed.
class Liveness {
public:
  class Watch {
  public:
    bool alive() const { return !token_.expired(); }
    bool gone() const { return token_.expired(); }

  private:
    friend class Liveness;
    explicit Watch(std::weak_ptr<void> token) : token_(std::move(token)) {}
    std::weak_ptr<void> token_;
  };

  Liveness() = default;
  Liveness(const Liveness&) = delete;
  Liveness& operator=(const Liveness&) = delete;

  Watch watch() const { return Watch(token_); }
  void kill() { token_.reset(); }

private:
  std::shared_ptr<void> token_ = std::make_shared<char>(0);
};

namespace detail {
// Closes a handle allocated with `new H` and deletes it in the close callback.
template <typename H> void close_and_delete(H* h) {
  if (!h) return;
  h->data = nullptr;
  auto* base = reinterpret_cast<uv_handle_t*>(h);
  if (uv_is_closing(base)) return;
  uv_close(base, [](uv_handle_t* p) { delete reinterpret_cast<H*>(p); });
}
} // namespace detail

// A one-shot or repeating timer.
class Timer {
public:
  explicit Timer(Loop& loop) : Timer(loop.get()) {}
  explicit Timer(uv_loop_t* loop);
  ~Timer() { detail::close_and_delete(h_); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(uint64_t timeout_ms, std::function<void()> fn, uint64_t repeat_ms = 0);
  void stop();
  bool active() const;
  // A timer that does not by itself keep the loop running.
  void unref() { uv_unref(reinterpret_cast<uv_handle_t*>(h_)); }

private:
  uv_timer_t* h_;
  std::function<void()> fn_;
};

// A signal watcher; the callback runs on the loop, never in signal context.
class SignalWatcher {
public:
  explicit SignalWatcher(Loop& loop);
  ~SignalWatcher() { detail::close_and_delete(h_); }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  Status start(int signum, std::function<void(int)> fn);
  void stop();
  void unref() { uv_unref(reinterpret_cast<uv_handle_t*>(h_)); }

private:
  uv_signal_t* h_;
  std::function<void(int)> fn_;
};

// Runs `work` on libuv's thread pool and then `done` on the loop thread. For blocking calls
// that would otherwise stall the loop (name resolution, large file reads).
void queue_work(Loop& loop, std::function<void()> work, std::function<void()> done);

// Ignore SIGPIPE process-wide: a peer or child that goes away must become an EPIPE error
// on the write, not a dead process. Every applet calls this first.
void ignore_sigpipe();

} // namespace cx::event
