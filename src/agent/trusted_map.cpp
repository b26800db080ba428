// The trusted-dispatcher map; see trusted_map.hpp.
#include "agent/trusted_map.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"
#include "conf/common.hpp"
#include "pki/serial.hpp"

namespace cx::agent {

namespace {

std::string strip_leading_zeros(std::string s) {
  size_t k = s.find_first_not_of('0');
  return k == std::string::npos ? std::string("0") : s.substr(k);
}

bool is_lower_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

} // namespace

std::string peer_key(std::string_view peer_serial_hex) {
  return pki::canon_serial(peer_serial_hex);
}

std::string wire_serial_key(std::string_view wire_serial) {
  std::string lower = to_lower(trim(wire_serial));
  if (lower.empty()) return "";
  if (is_hex(lower)) return strip_leading_zeros(lower);
  std::string k = pki::canon_serial(lower);
  // Only plain hex can ever equal a peer key; anything else ("nan", "-0x5") is unusable.
  return is_lower_hex(k) ? k : std::string();
}

std::string map_line_serial(std::string_view key) {
  if (pki::canon_serial(key) == key) return std::string(key);
  std::string hex(key);
  if (hex.size() % 2) hex.insert(hex.begin(), '0');
  std::string out = hex.size() == 2 ? "00:" : "";
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (i) out += ':';
    out.append(hex, i, 2);
  }
  return out;
}

const std::string* TrustedMap::find(std::string_view key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

Result<bool> TrustedMap::add(const std::string& key, const std::string& id, bool keep_owner) {
  if (!is_lower_hex(key)) return error("unusable serial '" + key + "'");
  if (!is_dispatcher_id(id)) return error("invalid dispatcher id '" + id + "'");
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second == id) return false;
    if (keep_owner) return error("serial already trusted for dispatcher '" + it->second + "'");
    it->second = id;
    return true;
  }
  entries_.emplace(key, id);
  return true;
}

Result<bool> TrustedMap::remove(const std::string& key, const std::string& id) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  if (it->second != id) return error("serial not owned by '" + id + "'");
  entries_.erase(it);
  return true;
}

TrustedMap parse_trusted_map(std::string_view text) {
  TrustedMap map;
  TrustedMap::Entries entries;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    size_t ws = 0;
    while (ws < line.size() && !conf::is_perl_space(line[ws]))
      ++ws;
    std::string_view serial = line.substr(0, ws);
    std::string_view id = trim(line.substr(ws));
    std::string key = pki::canon_serial(serial);
    if (!is_lower_hex(key) || !is_dispatcher_id(id)) continue;
    (void)map.add(key, std::string(id), false);
  }
  return map;
}

Result<TrustedMap> load_trusted_map(const std::string& path) {
  if (!path_exists(path)) return TrustedMap();
  // The map's directory belongs to the agent's user, and root edits the map at pairing: a
  // symbolic link or FIFO planted in its place is refused, not read (every write replaces the
  // map with a regular file anyway).
  auto text = read_regular_file(path, 16u << 20);
  if (!text.ok()) return text.status();
  return parse_trusted_map(*text);
}

std::string format_trusted_map(const TrustedMap& map) {
  std::string out(kTrustedMapHeader);
  for (const auto& [key, id] : map.entries())
    out += map_line_serial(key) + " " + id + "\n";
  return out;
}

Status save_trusted_map(const std::string& path, const TrustedMap& map) {
  WriteOptions o;
  o.mode = 0644;
  return write_file_atomic(path, format_trusted_map(map), o);
}

Status edit_trusted_map(const std::string& path,
                        const std::function<Result<bool>(TrustedMap&)>& edit) {
  // The lock file lives next to the map. When it cannot be opened (a root-created lock the
  // agent user may not open), we go on without it: the rename keeps the file whole, and the
  // only risk left is a lost update in a race between pairing and rotation.
  FileLock lock;
  (void)lock.lock(path + ".lock", true, 0664);
  auto map = load_trusted_map(path);
  if (!map.ok()) return map.status();
  auto changed = edit(*map);
  if (!changed.ok()) return changed.status();
  if (!*changed) return {};
  return save_trusted_map(path, *map);
}

Status add_trusted_dispatcher(const std::string& path, std::string_view wire_serial,
                              const std::string& id) {
  std::string key = wire_serial_key(wire_serial);
  if (key.empty()) return error("unusable serial '" + std::string(wire_serial) + "'");
  return edit_trusted_map(path, [&](TrustedMap& m) { return m.add(key, id, false); });
}

} // namespace cx::agent
