// `allowed_ips` (agent-and-wire §4.4): which peer addresses may connect at all, checked from
// the TCP peer address before any TLS handshake.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/common.hpp"

namespace cx::agent {

class AllowedIps {
public:
  struct Entry {
    std::string address; // canonical dotted quad, leading zeros removed
    int prefix = 32;     // 8, 16, 24, or 32 for an exact address
  };

  // Comma-separated entries, each trimmed: `a.b.c.d` or `a.b.c.d/N` with N in {8,16,24}.
  // Octets are 1-3 decimal digits, 0-255; leading zeros are dropped ("10.00.0.0/16" ->
  // "10.0.0.0/16"). A bad prefix is warned about as "unsupported prefix length", a bad address
  // as "malformed IPv4 address" (key = the entry), and the entry is dropped. Call it only when
  // the key is set: when no entry survives (a blank value included), the restriction is
  // dropped (every peer allowed, as the original) and `all_invalid` is set so the agent can say
  // so loudly.
  static AllowedIps parse(std::string_view value, std::vector<conf::ConfigWarning>* warnings);

  // No restriction configured (or none survived parsing).
  bool unrestricted() const { return entries_.empty(); }
  bool all_invalid() const { return all_invalid_; }
  // Exact address match, or equal first 1/2/3 octets for /8, /16, /24. IPv6 peers (any ':',
  // IPv4-mapped forms included) never match.
  bool allows(std::string_view peer_ip) const;
  const std::vector<Entry>& entries() const { return entries_; }

private:
  std::vector<Entry> entries_;
  bool all_invalid_ = false;
};

} // namespace cx::agent
