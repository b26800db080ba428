// The revocation list (agent-and-wire §4.3): certificate serials the agent refuses on every
// endpoint, in any form canon() accepts, one per line, '#' starting a comment anywhere.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::agent {

class RevokedList {
public:
  // True when canon(peer serial) (see peer_key()) is listed.
  bool contains(std::string_view key) const { return keys_.find(key) != keys_.end(); }
  size_t size() const { return keys_.size(); }
  void add(std::string key) { keys_.insert(std::move(key)); }

private:
  std::set<std::string, std::less<>> keys_;
};

// Each line: everything from '#' dropped, trimmed, blank skipped, then canon(); a line canon
// cannot read ("nan", "") is skipped.
RevokedList parse_revoked(std::string_view text);

struct RevokedLoad {
  RevokedList list;
  bool absent = false; // the file does not exist: log `revoked-serials-absent PATH REASON`
  std::string absent_reason;
};
// An absent file is an empty list (absent = true); an unreadable one is an error.
Result<RevokedLoad> load_revoked(const std::string& path);

} // namespace cx::agent
