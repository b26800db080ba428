// Tests for src/event/loop.cpp.
#include <catch2/catch.hpp>

#include <signal.h>

#include <functional>
#include <memory>
#include <vector>

#include "base/time.hpp"
#include "event/loop.hpp"

using namespace cx::event;

TEST_CASE("timers fire in order and can be destroyed in their own callback", "[event]") {
  Loop loop;
  std::vector<int> order;
  Timer a(loop), b(loop);
  auto* c = new Timer(loop);
  a.start(20, [&] { order.push_back(2); });
  b.start(5, [&] { order.push_back(1); });
  c->start(30, [&] {
    order.push_back(3);
    delete c; // the handle is closed later; nothing touches the object after this
  });
  loop.run();
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("signals are delivered on the loop", "[event]") {
  Loop loop;
  SignalWatcher hup(loop);
  int got = 0;
  REQUIRE(hup.start(SIGHUP,
                    [&](int sig) {
                      got = sig;
                      hup.stop();
                    })
              .ok());
  Timer t(loop);
  t.start(1, [] { ::raise(SIGHUP); });
  loop.run();
  CHECK(got == SIGHUP);
}

TEST_CASE("thread-pool work completes on the loop thread", "[event]") {
  Loop loop;
  int value = 0;
  bool done = false;
  queue_work(
      loop, [&] { value = 42; }, [&] { done = true; });
  loop.run();
  CHECK(done);
  CHECK(value == 42);
}

namespace {
// Counts its destructions, and can run a hook from its destructor (to defer more).
struct Tracked {
  Tracked(int* d, std::function<void()> f) : destroyed(d), on_destroy(std::move(f)) {}
  Tracked(const Tracked&) = delete;
  int* destroyed;
  std::function<void()> on_destroy;
  ~Tracked() {
    ++*destroyed;
    if (on_destroy) on_destroy();
  }
};
} // namespace

TEST_CASE("defer_delete frees on a later iteration, never inside the caller", "[event]") {
  int destroyed = 0;
  cx::event::Loop loop;
  int seen_in_timer = -1;
  cx::event::Timer t(loop);
  t.start(0, [&] {
    loop.defer_delete(std::make_shared<Tracked>(&destroyed, nullptr));
    seen_in_timer = destroyed; // still alive right after being handed over
  });
  loop.run();
  CHECK(seen_in_timer == 0);
  CHECK(destroyed == 1);
}

TEST_CASE("defer_delete: a destructor that defers more is handled, and the loop ends", "[event]") {
  int destroyed = 0;
  cx::event::Loop loop;
  loop.defer_delete(std::make_shared<Tracked>(
      &destroyed, [&] { loop.defer_delete(std::make_shared<Tracked>(&destroyed, nullptr)); }));
  loop.run();
  CHECK(destroyed == 2);
}

TEST_CASE("defer_delete: what is still deferred goes with the loop", "[event]") {
  int destroyed = 0;
  {
    cx::event::Loop loop;
    loop.defer_delete(std::make_unique<Tracked>(&destroyed, nullptr));
    CHECK(destroyed == 0);
  }
  CHECK(destroyed == 1);
}

TEST_CASE("post runs on a later iteration in order; unrun posts are dropped at teardown",
          "[event]") {
  std::vector<int> order;
  {
    cx::event::Loop loop;
    loop.post([&] { order.push_back(1); });
    loop.post([&] {
      order.push_back(2);
      loop.post([&] { order.push_back(3); });
    });
    CHECK(order.empty());
    loop.run();
    CHECK(order == std::vector<int>{1, 2, 3});
    loop.post([&] { order.push_back(4); }); // the loop is not run again
  }
  CHECK(order.size() == 3);
}

TEST_CASE("Liveness: a watch reports its owner gone after kill or destruction", "[event]") {
  cx::event::Liveness::Watch w = [] {
    cx::event::Liveness l;
    auto inner = l.watch();
    CHECK(inner.alive());
    l.kill();
    CHECK(inner.gone());
    cx::event::Liveness l2;
    return l2.watch();
  }();
  CHECK(w.gone());
  cx::event::Liveness l3;
  CHECK(l3.watch().alive());
}
