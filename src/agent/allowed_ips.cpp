// `allowed_ips` parsing and matching; see allowed_ips.hpp.
#include "agent/allowed_ips.hpp"

#include "base/strings.hpp"

namespace cx::agent {

namespace {

// Four octets of 1-3 decimal digits, each 0-255; returns them, or nullopt.
std::optional<std::vector<int>> parse_quad(std::string_view s) {
  auto parts = split(s, '.');
  if (parts.size() != 4) return std::nullopt;
  std::vector<int> out;
  for (const auto& p : parts) {
    if (p.empty() || p.size() > 3 || !is_digits(p)) return std::nullopt;
    int v = std::stoi(p);
    if (v > 255) return std::nullopt;
    out.push_back(v);
  }
  return out;
}

std::string quad_text(const std::vector<int>& q) {
  return std::to_string(q[0]) + "." + std::to_string(q[1]) + "." + std::to_string(q[2]) + "." +
         std::to_string(q[3]);
}

} // namespace

AllowedIps AllowedIps::parse(std::string_view value, std::vector<conf::ConfigWarning>* warnings) {
  AllowedIps a;
  for (const auto& raw : split(value, ',')) {
    std::string entry(trim(raw));
    if (entry.empty()) continue;
    std::string_view addr = entry;
    int prefix = 32;
    if (size_t slash = entry.find('/'); slash != std::string::npos) {
      std::string_view n = std::string_view(entry).substr(slash + 1);
      addr = std::string_view(entry).substr(0, slash);
      if (n != "8" && n != "16" && n != "24") {
        if (warnings) warnings->push_back({entry, "unsupported prefix length"});
        continue;
      }
      prefix = n == "8" ? 8 : n == "16" ? 16 : 24;
    }
    auto quad = parse_quad(addr);
    if (!quad) {
      if (warnings) warnings->push_back({entry, "malformed IPv4 address"});
      continue;
    }
    a.entries_.push_back({quad_text(*quad), prefix});
  }
  // Called only when the key is set: a blank value or only bad entries leave no restriction.
  a.all_invalid_ = a.entries_.empty();
  return a;
}

bool AllowedIps::allows(std::string_view peer_ip) const {
  if (entries_.empty()) return true;
  if (peer_ip.find(':') != std::string_view::npos) return false;
  auto peer = parse_quad(peer_ip);
  if (!peer) return false;
  for (const auto& e : entries_) {
    auto q = parse_quad(e.address);
    int octets = e.prefix / 8;
    bool same = true;
    for (int i = 0; i < octets && same; ++i)
      same = (*q)[static_cast<size_t>(i)] == (*peer)[static_cast<size_t>(i)];
    if (same) return true;
  }
  return false;
}

} // namespace cx::agent
