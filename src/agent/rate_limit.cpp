// Per-IP rate limiting; see rate_limit.hpp.
#include "agent/rate_limit.hpp"

#include <algorithm>

#include "log/log.hpp"

namespace cx::agent {

void RateLimiter::reset(Settings s) {
  settings_ = s;
  table_.clear();
}

bool RateLimiter::blocked(const std::string& ip, int64_t now) {
  if (settings_.disabled) return false;
  auto it = table_.find(ip);
  if (it == table_.end() || it->second.blocked_until == 0) return false;
  if (it->second.blocked_until > now) return true;
  table_.erase(it); // the block has expired: forget the IP entirely
  return false;
}

void RateLimiter::make_room(int64_t now) {
  // One pass: drop every entry whose block has expired and remember the one with the smallest
  // blocked_until (an entry without a block counts as 0, so it goes first); if the table is
  // still full, evict that one.
  auto victim = table_.end();
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.blocked_until != 0 && it->second.blocked_until <= now) {
      it = table_.erase(it);
      continue;
    }
    if (victim == table_.end() || it->second.blocked_until < victim->second.blocked_until)
      victim = it;
    ++it;
  }
  if (table_.size() >= kMaxIps && victim != table_.end()) {
    table_.erase(victim);
    log::warning("rate-evict", {{"COUNT", std::to_string(kMaxIps)}});
  }
}

std::optional<std::string> RateLimiter::record_failure(const std::string& ip, Failure kind,
                                                       int64_t now) {
  if (settings_.disabled || blocked(ip, now)) return std::nullopt;
  auto it = table_.find(ip);
  if (it == table_.end()) {
    if (table_.size() >= kMaxIps) make_room(now);
    it = table_.emplace(ip, Entry{}).first;
  }
  Entry& e = it->second;
  e.connections.push_back(now);
  if (kind == Failure::handshake) e.failures.push_back(now);

  int64_t horizon = now - std::max(settings_.volume.window, settings_.probe.window);
  while (!e.connections.empty() && e.connections.front() < horizon)
    e.connections.pop_front();
  while (!e.failures.empty() && e.failures.front() < horizon)
    e.failures.pop_front();

  auto within = [now](const std::deque<int64_t>& ts, int64_t window) {
    return static_cast<int64_t>(
        std::count_if(ts.begin(), ts.end(), [&](int64_t t) { return t > now - window; }));
  };
  const auto& vol = settings_.volume;
  const auto& probe = settings_.probe;
  std::optional<std::string> reason;
  if (vol.limit > 0 && within(e.connections, vol.window) >= vol.limit) {
    e.blocked_until = now + vol.block;
    reason = "volume";
  } else if (probe.limit > 0 && within(e.failures, probe.window) >= probe.limit) {
    e.blocked_until = now + probe.block;
    reason = "probe";
  }
  if (reason) {
    e.connections.clear();
    e.failures.clear();
    log::warning("rate-block", {{"PEER", ip}, {"REASON", *reason}});
  }
  return reason;
}

} // namespace cx::agent
