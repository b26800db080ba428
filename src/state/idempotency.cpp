// The Idempotency-Key index of POST /run; see idempotency.hpp.
#include "state/idempotency.hpp"

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/files.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "state/kv.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {

namespace {

constexpr mode_t kEntryMode = 0640;
constexpr mode_t kDirMode = 0750;
// An entry holds one answer, which holds at most what a run record holds.
constexpr size_t kMaxEntryBytes = 2 * kMaxRunRecordBytes;

std::string sha256_hex(std::string_view data) {
  unsigned char digest[32];
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  mbedtls_sha256(in, data.size(), digest, 0);
#else
  mbedtls_sha256_ret(in, data.size(), digest, 0);
#endif
  return hex_encode(digest, sizeof digest);
}

std::string to_json(const IdempotencyEntry& e) {
  json::Writer w;
  w.begin_object()
      .member("key", e.key)
      .member("scope", e.scope)
      .member("reqid", e.reqid)
      .member("async", e.async)
      .member("request", e.request);
  if (e.code) w.member("code", static_cast<int64_t>(*e.code));
  if (e.answer) w.member("answer", *e.answer);
  w.end_object();
  return w.str() + "\n";
}

std::optional<IdempotencyEntry> parse_entry(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc.ok() || !doc->IsObject()) return std::nullopt;
  IdempotencyEntry e;
  auto key = json::get_string(*doc, "key");
  auto scope = json::get_string(*doc, "scope");
  auto reqid = json::get_string(*doc, "reqid");
  auto async = json::get_bool_or(*doc, "async", false);
  auto request = json::get_string(*doc, "request");
  if (!key.ok() || !scope.ok() || !reqid.ok() || !async.ok() || !request.ok()) return std::nullopt;
  e.key = *key;
  e.scope = *scope;
  e.reqid = *reqid;
  e.async = *async;
  e.request = *request;
  auto code = json::get_int64(*doc, "code");
  auto answer = json::get_string(*doc, "answer");
  if (code.ok() && answer.ok()) {
    e.code = static_cast<int>(*code);
    e.answer = *answer;
  }
  return e;
}

std::optional<IdempotencyEntry> read_entry(const std::string& path) {
  auto text = read_regular_file(path, kMaxEntryBytes);
  if (!text.ok()) return std::nullopt;
  return parse_entry(*text);
}

bool fresh(const std::string& path, int64_t now, int64_t ttl) {
  auto mtime = file_mtime(path);
  return mtime && now - *mtime <= ttl;
}

} // namespace

bool is_idempotency_key(std::string_view key) {
  return !key.empty() && key.size() <= kMaxIdempotencyKey &&
         std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

std::string idempotency_scope(std::string_view username, std::string_view token) {
  std::string in = "ctrl-exec idempotency scope";
  in.push_back('\0');
  in.append(username);
  in.push_back('\0');
  in.append(token);
  return sha256_hex(in);
}

IdempotencyIndex::IdempotencyIndex(std::string runs_dir)
    : dir_(std::move(runs_dir) + "/.idempotency") {}

std::string IdempotencyIndex::entry_path(std::string_view scope, std::string_view key) const {
  std::string in(scope);
  in.push_back('\0');
  in.append(key);
  return dir_ + "/" + sha256_hex(in) + ".json";
}

// --- With the shared store (state/kv.hpp): the key idempotency/<sha256 hex>, created only if
// absent and bound to a lease of the run records' retention. -------------------------------------

namespace {

std::string kv_entry_key(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string file = path.substr(slash + 1);
  return "idempotency/" + file.substr(0, file.size() - 5); // without .json
}

std::optional<IdempotencyEntry> kv_entry(KvStore& kv, const std::string& key, int64_t* revision) {
  auto got = kv.get(key);
  if (!got.ok() || !*got) return std::nullopt;
  if (revision) *revision = (*got)->revision;
  return parse_entry((*got)->value);
}

} // namespace

std::optional<IdempotencyEntry> IdempotencyIndex::find(std::string_view scope, std::string_view key,
                                                       int64_t now, int64_t ttl) const {
  std::string path = entry_path(scope, key);
  if (KvStore* kv = shared_kv()) {
    auto e = kv_entry(*kv, kv_entry_key(path), nullptr); // the lease ends stale ones
    if (!e || e->scope != scope || e->key != key) return std::nullopt;
    return e;
  }
  if (!fresh(path, now, ttl)) return std::nullopt;
  auto e = read_entry(path);
  // The file name is a hash: the entry must say it is this very key of this very submitter.
  if (!e || e->scope != scope || e->key != key) return std::nullopt;
  return e;
}

Result<bool> IdempotencyIndex::claim(const IdempotencyEntry& entry, int64_t now,
                                     int64_t ttl) const {
  if (KvStore* kv = shared_kv()) {
    CX_ASSIGN_OR_RETURN(int64_t lease, kv->grant_lease(ttl));
    return kv->create(kv_entry_key(entry_path(entry.scope, entry.key)), to_json(entry), lease);
  }
  CX_TRY(make_dirs(dir_, kDirMode));
  std::string path = entry_path(entry.scope, entry.key);
  std::string tmp = dir_ + "/." + random_hex(8) + ".claim";
  WriteOptions o;
  o.mode = kEntryMode;
  CX_TRY(write_file_atomic(tmp, to_json(entry), o));
  Result<bool> out = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      out = true;
      break;
    }
    if (errno != EEXIST) {
      out = error("cannot create '" + path + "': " + errno_text(errno));
      break;
    }
    // Taken. A stale entry (its run is past the retention) is replaced, once.
    if (fresh(path, now, ttl) || ::unlink(path.c_str()) != 0) break;
  }
  ::unlink(tmp.c_str());
  return out;
}

Status IdempotencyIndex::record_answer(const IdempotencyEntry& entry) const {
  std::string path = entry_path(entry.scope, entry.key);
  if (KvStore* kv = shared_kv()) {
    std::string key = kv_entry_key(path);
    auto got = kv->get(key);
    if (!got.ok()) return got.status();
    auto now = *got ? parse_entry((*got)->value) : std::nullopt;
    if (!now || now->reqid != entry.reqid)
      return error("idempotency entry '" + key + "' is not the one of run " + entry.reqid);
    // Keeps the entry's lease: put() without one would make it last for ever.
    CX_ASSIGN_OR_RETURN(int64_t lease, kv->grant_lease(kRunRetentionSeconds));
    CX_ASSIGN_OR_RETURN(bool done, kv->replace(key, (*got)->revision, to_json(entry), lease));
    if (!done) return error("idempotency entry '" + key + "' changed under us");
    return {};
  }
  auto now = read_entry(path);
  if (!now || now->reqid != entry.reqid)
    return error("idempotency entry '" + path + "' is not the one of run " + entry.reqid);
  WriteOptions o;
  o.mode = kEntryMode;
  return write_file_atomic(path, to_json(entry), o);
}

void IdempotencyIndex::forget(const IdempotencyEntry& entry) const {
  std::string path = entry_path(entry.scope, entry.key);
  if (KvStore* kv = shared_kv()) {
    int64_t revision = 0;
    auto now = kv_entry(*kv, kv_entry_key(path), &revision);
    if (now && now->reqid == entry.reqid) (void)kv->remove(kv_entry_key(path));
    return;
  }
  if (auto now = read_entry(path); now && now->reqid == entry.reqid) ::unlink(path.c_str());
}

size_t IdempotencyIndex::purge(int64_t now, int64_t ttl) const {
  if (shared_kv()) return 0; // leases
  auto names = list_dir(dir_);
  if (!names.ok()) return 0;
  size_t removed = 0;
  for (const std::string& name : *names) {
    if (name.empty() || name[0] == '.' || !name.ends_with(".json")) continue;
    std::string path = dir_ + "/" + name;
    if (!fresh(path, now, ttl) && ::unlink(path.c_str()) == 0) ++removed;
  }
  return removed;
}

} // namespace cx::state
