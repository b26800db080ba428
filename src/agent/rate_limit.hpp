// Per-source-IP rate limiting on 7443 (agent-and-wire §4.6), with our change of what counts:
// only connections that fail (a failed TLS handshake, a refusal by the trusted map or the
// revocation list) are recorded, so a busy trusted dispatcher is never throttled, however
// many requests it sends (see docs/COMPATIBILITY.md). The table semantics are the original's:
// volume and probe limits, blocks that expire, a cap of 1000 IPs with eviction, one log line
// per block.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "conf/common.hpp"

namespace cx::agent {

struct RateLimitSettings {
  bool disabled = false;
  conf::RateLimit volume = conf::kDefaultVolumeLimit;
  conf::RateLimit probe = conf::kDefaultProbeLimit;
};

class RateLimiter {
public:
  using Settings = RateLimitSettings;
  static constexpr size_t kMaxIps = 1000;

  enum class Failure {
    handshake, // counts toward the volume and the probe limit
    refused,   // map or revocation refusal after the handshake: the volume limit only
  };

  explicit RateLimiter(Settings s = {}) : settings_(s) {}

  // New settings and an empty table (SIGHUP).
  void reset(Settings s);

  // Whether `ip` is inside an active block at `now` (seconds). An expired block removes the
  // IP's entry, as in the original.
  bool blocked(const std::string& ip, int64_t now);

  // Records a failed connection and applies the limits; logs `rate-block PEER REASON` when
  // this starts a block (and `rate-evict COUNT` when the table is full). Nothing is recorded
  // while the IP is blocked or limiting is disabled. Returns the reason of a new block.
  std::optional<std::string> record_failure(const std::string& ip, Failure kind, int64_t now);

  size_t size() const { return table_.size(); }

private:
  struct Entry {
    std::deque<int64_t> connections; // failed connections (volume)
    std::deque<int64_t> failures;    // failed handshakes (probe)
    int64_t blocked_until = 0;
  };
  void make_room(int64_t now);

  Settings settings_;
  std::map<std::string, Entry> table_;
};

} // namespace cx::agent
