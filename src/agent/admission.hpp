// The agent's defences against slow and flooding clients on 7443 (issue 13,
// docs/COMPATIBILITY.md), as pieces the server (server.cpp) puts together: the http::Server's
// admission limits and deadlines from agent.conf, and the small pool in which peers whose
// certificate is not in the trusted map may still ask for what is not map-gated (/renew,
// /renew-complete).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "conf/agent.hpp"
#include "http/server.hpp"

namespace cx::agent {

// The limits and deadlines of agent.conf as the http::Server takes them.
http::ServerTuning server_tuning(const conf::AgentConfig& config);

// A blocked address (rate limiter) is refused at accept, before any crypto, except while it holds
// fewer than this many connections: a trusted dispatcher behind it is still served (its
// certificate is only known after the handshake; docs/COMPATIBILITY.md), and a prober gets one
// handshake at a time, never answered.
inline constexpr size_t kBlockedAddressConnections = 1;

// Connections past the handshake whose certificate is not in the trusted map, by connection id
// (ids grow with arrival, so the smallest is the oldest).
class UntrustedPool {
public:
  // Room for one more among `capacity`: nullopt when the pool is full of members that may not
  // be shed; otherwise the id of the member to drop first (0 when there is room already), the
  // oldest for which `sheddable` holds (one still sending its request).
  std::optional<uint64_t> make_room(size_t capacity,
                                    const std::function<bool(uint64_t id)>& sheddable) const;
  void add(uint64_t id) { ids_.insert(id); }
  // false when `id` was not a member.
  bool remove(uint64_t id) { return ids_.erase(id) > 0; }
  bool contains(uint64_t id) const { return ids_.count(id) > 0; }
  size_t size() const { return ids_.size(); }

private:
  std::set<uint64_t> ids_;
};

} // namespace cx::agent
