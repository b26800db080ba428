// The Idempotency-Key of the API's POST /run (ours; docs/COMPATIBILITY.md, API): which run a
// key of a submitter started, and the answer that run was given, so that a repeat is answered
// from here instead of running again. One file per key and submitter:
// `<runs_dir>/.idempotency/<sha256 hex>.json`, created once (link(2), so that of two requests
// racing for a key exactly one wins, across processes too), kept as long as run records are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "state/run_store.hpp"

namespace cx::state {

inline constexpr size_t kMaxIdempotencyKey = 128;

// 1 to 128 bytes, each printable ASCII (0x20 to 0x7e).
bool is_idempotency_key(std::string_view key);

// Who a key belongs to: SHA-256 (hex) over the username and the token the auth hook was shown.
// The token itself is never stored.
std::string idempotency_scope(std::string_view username, std::string_view token);

struct IdempotencyEntry {
  std::string key;
  std::string scope;
  std::string reqid;
  bool async = false;
  std::string request; // canonical JSON of what was asked: hosts, script, args, async, username
  // The answer, once it was given: status code and body, replayed byte for byte.
  std::optional<int> code;
  std::optional<std::string> answer;
};

class IdempotencyIndex {
public:
  // `runs_dir` is paths::runs_dir().
  explicit IdempotencyIndex(std::string runs_dir);

  // The entry of (scope, key), if there is one younger than `ttl` seconds.
  std::optional<IdempotencyEntry> find(std::string_view scope, std::string_view key, int64_t now,
                                       int64_t ttl = kRunRetentionSeconds) const;
  // Creates the entry. Returns false when (scope, key) already has one (another request won);
  // an entry older than `ttl` is replaced.
  Result<bool> claim(const IdempotencyEntry& entry, int64_t now,
                     int64_t ttl = kRunRetentionSeconds) const;
  // Stores the answer in the entry of its (scope, key), which must name the same reqid.
  Status record_answer(const IdempotencyEntry& entry) const;
  // Removes the entry (a claim whose run was never dispatched).
  void forget(const IdempotencyEntry& entry) const;
  // Deletes entries older than `ttl` seconds; returns how many.
  size_t purge(int64_t now, int64_t ttl = kRunRetentionSeconds) const;

  std::string entry_path(std::string_view scope, std::string_view key) const;

private:
  std::string dir_;
};

} // namespace cx::state
