// Per-source-IP connection rate limiting (agent-and-wire §4.6, dispatcher-and-api §8.1): the
// pairing listener uses the volume limit; the probe limit (failures) is there for the same
// algorithm's other user. State is in memory only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

#include "conf/common.hpp"

namespace cx::pairing {

class RateLimiter {
public:
  struct Options {
    conf::RateLimit volume = conf::kDefaultVolumeLimit;
    std::optional<conf::RateLimit> probe; // unset: no failure limit (the pairing port)
    bool disabled = false;
    size_t max_entries = 1000;
  };

  explicit RateLimiter(Options opts) : opts_(opts) {}

  // Before admitting a connection from `ip` at `now` (unix seconds): false means drop it
  // silently. The first refusal of a block logs `rate-block PEER REASON=volume|probe`; a full
  // table logs `rate-evict COUNT=<max>`.
  bool check(const std::string& ip, int64_t now);
  // For an address that check() refused: true once per block, for the one connection that is
  // let through to be told why ("rate limited") instead of dropped; false after that.
  bool tell_blocked(const std::string& ip);
  // Whether `ip` is blocked at `now` (no side effects).
  bool blocked(const std::string& ip, int64_t now) const;
  // After admitting: count the connection.
  void record_connection(const std::string& ip, int64_t now);
  // A failed TLS handshake (probe accounting).
  void record_failure(const std::string& ip, int64_t now);
  void clear() { table_.clear(); }
  size_t size() const { return table_.size(); }

private:
  struct Entry {
    std::deque<int64_t> connections;
    std::deque<int64_t> failures;
    int64_t blocked_until = 0;
    bool told = false; // this block's refusal was answered (the entry goes when it ends)
  };
  void evict(int64_t now);

  Options opts_;
  std::unordered_map<std::string, Entry> table_;
};

} // namespace cx::pairing
