// The per-IP rate limiter; see rate_limiter.hpp.
#include "pairing/rate_limiter.hpp"

#include <algorithm>

#include "log/log.hpp"

namespace cx::pairing {
namespace {

size_t count_since(const std::deque<int64_t>& times, int64_t since) {
  return static_cast<size_t>(
      std::count_if(times.begin(), times.end(), [since](int64_t t) { return t > since; }));
}

void drop_before(std::deque<int64_t>& times, int64_t oldest) {
  while (!times.empty() && times.front() <= oldest)
    times.pop_front();
}

} // namespace

void RateLimiter::evict(int64_t now) {
  // One pass: drop every expired block, and remember the entry whose block ends first
  // (an entry that is not blocked counts as 0, so it goes before any blocked one).
  auto victim = table_.end();
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.blocked_until > 0 && it->second.blocked_until <= now) {
      it = table_.erase(it);
      continue;
    }
    if (victim == table_.end() || it->second.blocked_until < victim->second.blocked_until)
      victim = it;
    ++it;
  }
  if (table_.size() >= opts_.max_entries && victim != table_.end()) table_.erase(victim);
  log::warning("rate-evict", {{"COUNT", std::to_string(opts_.max_entries)}});
}

bool RateLimiter::tell_blocked(const std::string& ip) {
  auto it = table_.find(ip);
  if (it == table_.end() || it->second.blocked_until == 0 || it->second.told) return false;
  it->second.told = true;
  return true;
}

bool RateLimiter::blocked(const std::string& ip, int64_t now) const {
  if (opts_.disabled) return false;
  auto it = table_.find(ip);
  return it != table_.end() && it->second.blocked_until > now;
}

bool RateLimiter::check(const std::string& ip, int64_t now) {
  if (opts_.disabled) return true;
  if (auto it = table_.find(ip); it != table_.end() && it->second.blocked_until > 0) {
    if (it->second.blocked_until > now) return false;
    table_.erase(it); // the block is over: start clean
    return true;
  }
  if (table_.size() >= opts_.max_entries) evict(now);
  auto it = table_.find(ip);
  if (it == table_.end()) return true; // nothing recorded yet
  Entry& e = it->second;
  int64_t window = opts_.volume.window;
  if (opts_.probe) window = std::max(window, opts_.probe->window);
  drop_before(e.connections, now - window);
  drop_before(e.failures, now - window);
  const conf::RateLimit& v = opts_.volume;
  if (v.limit > 0 && count_since(e.connections, now - v.window) >= static_cast<size_t>(v.limit)) {
    e.blocked_until = now + v.block;
    log::warning("rate-block", {{"PEER", ip}, {"REASON", "volume"}});
    return false;
  }
  if (opts_.probe && opts_.probe->limit > 0 &&
      count_since(e.failures, now - opts_.probe->window) >=
          static_cast<size_t>(opts_.probe->limit)) {
    e.blocked_until = now + opts_.probe->block;
    log::warning("rate-block", {{"PEER", ip}, {"REASON", "probe"}});
    return false;
  }
  return true;
}

void RateLimiter::record_connection(const std::string& ip, int64_t now) {
  if (opts_.disabled) return;
  table_[ip].connections.push_back(now);
}

void RateLimiter::record_failure(const std::string& ip, int64_t now) {
  if (opts_.disabled) return;
  table_[ip].failures.push_back(now);
}

} // namespace cx::pairing
