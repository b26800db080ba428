// The CLI's TLS session cache (ours; the original made a full handshake every time): one file,
// mode 0600, mapping an agent target ("host:port") to the mbedTLS-serialised client session of
// the last connection to it, so the next `ced ping`/`run` resumes instead of paying a full
// handshake. The bytes are opaque here. A missing, unreadable or corrupt file or entry is an
// empty cache: the worst case is a full handshake, never an error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::state {

// Entries older than this are dropped on load (our agents' tickets live 12 h).
inline constexpr int64_t kSessionMaxAgeSeconds = 12 * 3600;

class SessionCache {
public:
  // `path` is paths::tls_session_cache().
  explicit SessionCache(std::string path);
  const std::string& path() const { return path_; }

  // Reads the file; entries older than kSessionMaxAgeSeconds at `now` are skipped.
  void load(int64_t now);
  std::optional<std::string> get(std::string_view target) const;
  // When the entry for `target` was last stored (unix seconds), if there is one.
  std::optional<int64_t> saved_at(std::string_view target) const;
  void put(std::string_view target, std::string bytes, int64_t now);
  void erase(std::string_view target);
  size_t size() const { return entries_.size(); }

  // Writes the entries changed since load() (put/erase) over the file's current content,
  // under an flock on "<path>.lock", atomically, mode 0600, so that concurrent CLI runs do not
  // drop each other's entries. Nothing changed: nothing is written.
  Status save(int64_t now);

private:
  struct Entry {
    std::string bytes;
    int64_t saved = 0;
  };
  std::string path_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, std::optional<Entry>, std::less<>> changed_; // nullopt: erased
};

} // namespace cx::state
