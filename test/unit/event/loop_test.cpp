// Tests for src/event/loop.cpp.
#include <catch2/catch.hpp>

#include <signal.h>

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
