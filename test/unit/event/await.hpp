// For tests that drive an asynchronous call on a loop: run the loop until the call delivers its
// one result, and return that result.
#pragma once

#include <catch2/catch.hpp>

#include <optional>
#include <utility>

#include "event/loop.hpp"

namespace cx::test {

// `start(deliver)` starts the call and returns what keeps it alive (a call object); the call
// passes its result to `deliver`, which stops the loop.
template <typename T, typename Start> T await(event::Loop& loop, Start start) {
  std::optional<T> result;
  auto call = start([&](T r) {
    result = std::move(r);
    loop.stop();
  });
  loop.run();
  REQUIRE(result);
  return std::move(*result);
}

} // namespace cx::test
