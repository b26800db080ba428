// Tests for src/agent/allowed_ips.cpp, revoked.cpp and rate_limit.cpp (tag [agent]): the
// access rules of agent-and-wire §4.3, §4.4 and §4.6 as tables.
#include <catch2/catch.hpp>

#include "agent/allowed_ips.hpp"
#include "agent/rate_limit.hpp"
#include "agent/revoked.hpp"
#include "agent/trusted_map.hpp"
#include "log/log.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("allowed_ips parsing", "[agent]") {
  struct Row {
    const char* value;
    std::vector<std::string> entries; // "addr/prefix"
    std::vector<conf::ConfigWarning> warnings;
    bool all_invalid;
  };
  const Row rows[] = {
      {"10.0.0.1", {"10.0.0.1/32"}, {}, false},
      {" 10.0.0.0/8 , 192.168.1.0/24,172.16.0.0/16 ",
       {"10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/16"},
       {},
       false},
      {"10.00.0.0/16", {"10.0.0.0/16"}, {}, false},
      {"010.001.002.003", {"10.1.2.3/32"}, {}, false},
      {"10.0.0.0/12", {}, {{"10.0.0.0/12", "unsupported prefix length"}}, true},
      {"10.0.0.0/32", {}, {{"10.0.0.0/32", "unsupported prefix length"}}, true},
      {"256.1.1.1,1.2.3,a.b.c.d,1.2.3.4.5,1234.1.1.1",
       {},
       {{"256.1.1.1", "malformed IPv4 address"},
        {"1.2.3", "malformed IPv4 address"},
        {"a.b.c.d", "malformed IPv4 address"},
        {"1.2.3.4.5", "malformed IPv4 address"},
        {"1234.1.1.1", "malformed IPv4 address"}},
       true},
      {"::1", {}, {{"::1", "malformed IPv4 address"}}, true},
      {" ", {}, {}, true},
      {"1.2.3.4,,bad", {"1.2.3.4/32"}, {{"bad", "malformed IPv4 address"}}, false},
  };
  for (const auto& r : rows) {
    INFO(r.value);
    std::vector<conf::ConfigWarning> w;
    auto a = AllowedIps::parse(r.value, &w);
    std::vector<std::string> got;
    for (const auto& e : a.entries())
      got.push_back(e.address + "/" + std::to_string(e.prefix));
    CHECK(got == r.entries);
    CHECK(w == r.warnings);
    CHECK(a.all_invalid() == r.all_invalid);
    CHECK(a.unrestricted() == r.entries.empty());
  }
}

TEST_CASE("allowed_ips matching", "[agent]") {
  auto a = AllowedIps::parse("10.0.0.0/8, 192.168.1.0/24, 172.16.0.0/16, 8.8.8.8", nullptr);
  struct Row {
    const char* ip;
    bool allowed;
  };
  const Row rows[] = {
      {"10.1.2.3", true},         {"10.255.255.255", true}, {"11.0.0.1", false},
      {"192.168.1.77", true},     {"192.168.2.1", false},   {"172.16.9.9", true},
      {"172.17.0.1", false},      {"8.8.8.8", true},        {"8.8.8.9", false},
      {"::ffff:10.1.2.3", false}, {"::1", false},           {"unknown", false},
      {"010.1.2.3", true}, // peer text is parsed as octets too
  };
  for (const auto& r : rows) {
    INFO(r.ip);
    CHECK(a.allows(r.ip) == r.allowed);
  }
  CHECK(AllowedIps::parse("bogus", nullptr).allows("1.2.3.4")); // all invalid: unrestricted
}

TEST_CASE("revoked list parsing", "[agent]") {
  auto list = parse_revoked("# revoked\n0x7F3A9C\nserial=DEADBEEF # old dispatcher\n"
                            "DE:AD:00:01\n255\n\n   \nnot-a-serial!\n");
  CHECK(list.size() == 4);
  for (const char* serial : {"7F3A9C", "deadbeef", "DEAD0001", "ff"})
    CHECK(list.contains(peer_key(serial)));
  CHECK_FALSE(list.contains(peer_key("7f3a9d")));
  CHECK_FALSE(list.contains("nan"));

  test::TempDir dir;
  auto absent = load_revoked(dir / "none");
  REQUIRE(absent.ok());
  CHECK(absent->absent);
  CHECK(absent->list.size() == 0);
}

namespace {
struct LimiterFixture {
  LimiterFixture() {
    log::init("ctrl-exec-agent", log::Sink::capture);
    log::clear_captured();
  }
  ~LimiterFixture() { log::shutdown(); }
  size_t count(const std::string& needle) const {
    size_t n = 0;
    for (const auto& r : log::captured())
      if (r.line.find(needle) != std::string::npos) ++n;
    return n;
  }
};
} // namespace

TEST_CASE_METHOD(LimiterFixture, "rate limiter: failed connections hit the volume limit",
                 "[agent]") {
  RateLimiter rl({false, {10, 60, 300}, {0, 600, 3600}});
  const std::string ip = "192.0.2.1";
  for (int i = 0; i < 9; ++i)
    CHECK_FALSE(rl.record_failure(ip, RateLimiter::Failure::refused, 1000 + i));
  CHECK_FALSE(rl.blocked(ip, 1009));
  CHECK(rl.record_failure(ip, RateLimiter::Failure::refused, 1009) == std::string("volume"));
  CHECK(rl.blocked(ip, 1010));
  CHECK(rl.blocked(ip, 1308));
  // Nothing more is recorded or logged while blocked.
  CHECK_FALSE(rl.record_failure(ip, RateLimiter::Failure::refused, 1100));
  CHECK(count("ACTION=rate-block PEER=192.0.2.1 REASON=volume") == 1);
  // The block expires after 300 s and the entry is forgotten.
  CHECK_FALSE(rl.blocked(ip, 1309));
  CHECK(rl.size() == 0);
  CHECK(count("rate-block") == 1);
}

TEST_CASE_METHOD(LimiterFixture, "rate limiter: handshake failures hit the probe limit",
                 "[agent]") {
  RateLimiter rl({false, {10, 60, 300}, {3, 600, 3600}});
  const std::string ip = "192.0.2.2";
  CHECK_FALSE(rl.record_failure(ip, RateLimiter::Failure::handshake, 0));
  CHECK_FALSE(rl.record_failure(ip, RateLimiter::Failure::refused, 1)); // not a probe
  CHECK_FALSE(rl.record_failure(ip, RateLimiter::Failure::handshake, 500));
  CHECK(rl.record_failure(ip, RateLimiter::Failure::handshake, 599) == std::string("probe"));
  CHECK(rl.blocked(ip, 599 + 3599));
  CHECK_FALSE(rl.blocked(ip, 599 + 3600));

  // Old failures fall out of the window.
  const std::string ip2 = "192.0.2.3";
  CHECK_FALSE(rl.record_failure(ip2, RateLimiter::Failure::handshake, 0));
  CHECK_FALSE(rl.record_failure(ip2, RateLimiter::Failure::handshake, 10));
  CHECK_FALSE(rl.record_failure(ip2, RateLimiter::Failure::handshake, 700));
  CHECK_FALSE(rl.blocked(ip2, 701));
}

TEST_CASE_METHOD(LimiterFixture, "rate limiter: disabled, reset, and the 1000-IP table",
                 "[agent]") {
  RateLimiter off({true, {1, 60, 300}, {1, 600, 3600}});
  CHECK_FALSE(off.record_failure("192.0.2.9", RateLimiter::Failure::handshake, 0));
  CHECK_FALSE(off.blocked("192.0.2.9", 0));

  RateLimiter rl({false, {1, 60, 5000}, {0, 600, 3600}});
  // 1000 blocked IPs, with increasing block ends.
  for (int i = 0; i < 1000; ++i)
    rl.record_failure("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256),
                      RateLimiter::Failure::refused, i);
  CHECK(rl.size() == 1000);
  // A new IP evicts the entry with the smallest blocked_until (the first one).
  rl.record_failure("10.9.9.9", RateLimiter::Failure::refused, 1000);
  CHECK(rl.size() == 1000);
  CHECK(count("ACTION=rate-evict COUNT=1000") == 1);
  CHECK_FALSE(rl.blocked("10.0.0.0", 1000));
  CHECK(rl.blocked("10.0.0.1", 1000));
  // Expired blocks are reclaimed in bulk before evicting anyone.
  rl.record_failure("10.9.9.10", RateLimiter::Failure::refused, 1000 + 5000 + 500);
  CHECK(rl.size() < 1000);
  CHECK(count("rate-evict") == 1);

  rl.reset({false, {1, 60, 300}, {0, 600, 3600}});
  CHECK(rl.size() == 0);
  CHECK_FALSE(rl.blocked("10.0.0.1", 1000));
}
