// The CLI's TLS session cache; see session_cache.hpp. The file is one JSON object:
//   {"<target>": {"session": "<base64 of the serialised session>", "saved": <unix>}, ...}
// Anything in it that does not read as such an entry is skipped, never reported.
#include "state/session_cache.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

constexpr mode_t kCacheMode = 0600;
// A serialised session with a ticket is a few hundred bytes to a few KiB; a large fleet stays
// well under this. A bigger file is treated as corrupt.
constexpr size_t kMaxCacheBytes = 16u << 20;

struct FileEntry {
  std::string bytes;
  int64_t saved = 0;
};
using EntryMap = std::map<std::string, FileEntry, std::less<>>;

// Older than the maximum age at `now`. Written so that no `saved` a file may hold overflows
// (now - saved did for a saved near INT64_MIN: undefined behaviour).
bool expired(int64_t saved, int64_t now) {
  return saved < now - kSessionMaxAgeSeconds;
}

// The entries of the file at `path` that are well-formed and not older than the maximum age
// at `now`. A missing, unreadable or corrupt file gives none.
EntryMap read_entries(const std::string& path, int64_t now) {
  EntryMap out;
  auto body = read_file(path, kMaxCacheBytes);
  if (!body.ok()) return out;
  auto doc = json::parse(*body);
  if (!doc.ok() || !doc->IsObject()) return out;
  for (auto it = doc->MemberBegin(); it != doc->MemberEnd(); ++it) {
    const json::Value& e = it->value;
    const json::Value* session = json::find(e, "session");
    const json::Value* saved = json::find(e, "saved");
    if (!session || !session->IsString() || !saved || !saved->IsInt64()) continue;
    if (expired(saved->GetInt64(), now)) continue;
    auto bytes = base64_decode(std::string_view(session->GetString(), session->GetStringLength()));
    if (!bytes || bytes->empty()) continue;
    out[std::string(it->name.GetString(), it->name.GetStringLength())] =
        FileEntry{std::move(*bytes), saved->GetInt64()};
  }
  return out;
}

std::string entries_json(const EntryMap& entries) {
  json::Writer w;
  w.begin_object();
  for (const auto& [target, e] : entries)
    w.key(target)
        .begin_object()
        .member("session", base64_encode(e.bytes))
        .member("saved", e.saved)
        .end_object();
  w.end_object();
  return w.str();
}

} // namespace

SessionCache::SessionCache(std::string path) : path_(std::move(path)) {}

void SessionCache::load(int64_t now) {
  entries_.clear();
  changed_.clear();
  for (auto& [target, e] : read_entries(path_, now))
    entries_.emplace(target, Entry{std::move(e.bytes), e.saved});
}

std::optional<int64_t> SessionCache::saved_at(std::string_view target) const {
  auto it = entries_.find(target);
  if (it == entries_.end()) return std::nullopt;
  return it->second.saved;
}

std::optional<std::string> SessionCache::get(std::string_view target) const {
  auto it = entries_.find(target);
  if (it == entries_.end()) return std::nullopt;
  return it->second.bytes;
}

void SessionCache::put(std::string_view target, std::string bytes, int64_t now) {
  Entry e{std::move(bytes), now};
  entries_.insert_or_assign(std::string(target), e);
  changed_.insert_or_assign(std::string(target), std::move(e));
}

void SessionCache::erase(std::string_view target) {
  if (auto it = entries_.find(target); it != entries_.end()) entries_.erase(it);
  changed_.insert_or_assign(std::string(target), std::nullopt);
}

Status SessionCache::save(int64_t now) {
  if (changed_.empty()) return {};
  CX_TRY(make_dirs(dirname(path_), 0755));
  // Re-read under the lock and apply only our changes, so that entries another CLI run saved
  // since our load() survive.
  FileLock lock;
  CX_TRY(lock.lock(path_ + ".lock", true, kCacheMode));
  EntryMap merged = read_entries(path_, now);
  for (const auto& [target, change] : changed_) {
    if (change)
      merged.insert_or_assign(target, FileEntry{change->bytes, change->saved});
    else if (auto it = merged.find(target); it != merged.end())
      merged.erase(it);
  }
  std::erase_if(merged, [&](const auto& kv) { return expired(kv.second.saved, now); });
  WriteOptions opts;
  opts.mode = kCacheMode;
  // No fsync: the rename keeps the file whole, and a file lost in a crash only costs the next
  // run a full handshake.
  opts.fsync = false;
  CX_TRY(write_file_atomic(path_, entries_json(merged) + "\n", opts));
  changed_.clear();
  entries_.clear();
  for (auto& [target, e] : merged)
    entries_.emplace(target, Entry{std::move(e.bytes), e.saved});
  return {};
}

} // namespace cx::state
