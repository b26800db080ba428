// Tests for src/pairing/rate_limiter.cpp (tag [pairing]): acceptance row 28 of dispatcher §12
// and the agent spec's rate-limit rows (§4.6, §8 item 6).
#include <catch2/catch.hpp>

#include "log/log.hpp"
#include "pairing/rate_limiter.hpp"

using namespace cx::pairing;

namespace {
size_t count_lines(const std::string& needle) {
  size_t n = 0;
  for (const auto& r : cx::log::captured())
    if (r.line.find(needle) != std::string::npos) ++n;
  return n;
}
} // namespace

TEST_CASE("rate limiter: the block starts at the limit and lasts its time", "[pairing]") {
  cx::log::init("test", cx::log::Sink::capture);
  RateLimiter::Options o;
  o.volume = {3, 60, 300};
  RateLimiter rl(o);
  const int64_t t0 = 1000;
  // Each row: a check at `t` and whether it is admitted (admitted ones are recorded).
  struct Row {
    int64_t t;
    bool allowed;
  };
  const Row rows[] = {
      {t0, true},        {t0 + 1, true},   {t0 + 2, true}, // three recorded
      {t0 + 3, false},                                     // the limit reached: blocked
      {t0 + 200, false},                                   // still inside the 300 s block
      {t0 + 303, true},                                    // the block is over: a clean slate
      {t0 + 304, true},  {t0 + 305, true}, {t0 + 306, false},
  };
  for (const auto& r : rows) {
    INFO("t = " << r.t - t0);
    bool ok = rl.check("10.0.0.1", r.t);
    CHECK(ok == r.allowed);
    if (ok) rl.record_connection("10.0.0.1", r.t);
  }
  CHECK(count_lines("ACTION=rate-block PEER=10.0.0.1 REASON=volume") == 2); // once per block
  cx::log::shutdown();
}

TEST_CASE("rate limiter: old connections age out, IPs are isolated, disable", "[pairing]") {
  cx::log::init("test", cx::log::Sink::capture);
  RateLimiter::Options o;
  o.volume = {2, 60, 300};
  RateLimiter rl(o);
  rl.record_connection("a", 0);
  rl.record_connection("a", 10);
  CHECK(rl.check("b", 20)); // another IP is not affected
  CHECK_FALSE(rl.check("a", 20));
  RateLimiter aging(o);
  aging.record_connection("a", 0);
  aging.record_connection("a", 10);
  CHECK(aging.check("a", 65)); // the first one is more than 60 s old
  aging.record_connection("a", 65);
  CHECK_FALSE(aging.check("a", 69)); // 10 and 65 are inside the window

  RateLimiter::Options off = o;
  off.disabled = true;
  RateLimiter never(off);
  for (int i = 0; i < 100; ++i) {
    CHECK(never.check("a", i));
    never.record_connection("a", i);
  }
  CHECK(never.size() == 0);
  cx::log::shutdown();
}

TEST_CASE("rate limiter: probe failures block when a probe limit is set", "[pairing]") {
  cx::log::init("test", cx::log::Sink::capture);
  RateLimiter::Options o;
  o.probe = cx::conf::RateLimit{3, 600, 3600};
  RateLimiter rl(o);
  for (int i = 0; i < 3; ++i)
    rl.record_failure("p", i);
  CHECK_FALSE(rl.check("p", 5));
  CHECK(count_lines("ACTION=rate-block PEER=p REASON=probe") == 1);
  CHECK_FALSE(rl.check("p", 3600));
  CHECK(rl.check("p", 3606));
  cx::log::shutdown();
}

TEST_CASE("rate limiter: a full table evicts expired blocks, then the earliest", "[pairing]") {
  cx::log::init("test", cx::log::Sink::capture);
  RateLimiter::Options o;
  o.volume = {1, 60, 100};
  o.max_entries = 4;
  RateLimiter rl(o);
  // Three IPs blocked at t = 0, 10, 20 until t + 100, and one that is not blocked.
  for (int i = 0; i < 3; ++i) {
    std::string ip = "10.0.0." + std::to_string(i);
    rl.record_connection(ip, i * 10);
    CHECK_FALSE(rl.check(ip, i * 10));
  }
  rl.record_connection("x", 30);
  CHECK(rl.size() == 4);
  // At t=105 only the first block has expired: the pass reclaims it, nothing else goes.
  CHECK(rl.check("new", 105));
  CHECK(rl.size() == 3);
  CHECK(count_lines("ACTION=rate-evict COUNT=4") == 1);
  rl.record_connection("new", 105); // 4 entries again, none expired at t=106
  CHECK(rl.check("other", 106));
  CHECK(rl.size() == 3); // an entry whose block ends first (an unblocked one) went
  CHECK(count_lines("ACTION=rate-evict COUNT=4") == 2);
  cx::log::shutdown();
}
