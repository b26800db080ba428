// The run store; see run_store.hpp. Records are built and edited as DOMs, members in the order
// of dispatcher-and-api §3.3, and written whole with an atomic rename.
#include "state/run_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "base/files.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "state/kv.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

using Alloc = json::Document::AllocatorType;

constexpr mode_t kRecordMode = 0640;
constexpr mode_t kDirMode = 0750;
// The API processes' lock files: group members (the CLI) probe them, so they may open them.
constexpr mode_t kInstanceLockMode = 0660;
constexpr std::string_view kInstanceDir = "/.api";

json::Value text(std::string_view s, Alloc& a) {
  return json::Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

void add(json::Value& obj, std::string_view key, json::Value v, Alloc& a) {
  obj.AddMember(text(key, a), std::move(v), a);
}

// Sets obj[key] = v, in place when the member exists (its position is kept), else appended.
void set(json::Value& obj, std::string_view key, json::Value v, Alloc& a) {
  auto it = obj.FindMember(json::Value(rapidjson::StringRef(key.data(), key.size())));
  if (it != obj.MemberEnd())
    it->value = std::move(v);
  else
    add(obj, key, std::move(v), a);
}

void add_submitter(json::Value& obj, const std::optional<Submitter>& submitter, Alloc& a) {
  if (!submitter) return;
  json::Value s(rapidjson::kObjectType);
  add(s, "username", text(submitter->username, a), a);
  add(s, "source_ip", text(submitter->source_ip, a), a);
  add(obj, "submitter", std::move(s), a);
}

// A run record with the members every record starts with, in their order.
json::Document new_record(std::string_view reqid, std::string_view script, std::string_view mode) {
  json::Document doc;
  doc.SetObject();
  Alloc& a = doc.GetAllocator();
  add(doc, "reqid", text(reqid, a), a);
  add(doc, "script", text(script, a), a);
  add(doc, "mode", text(mode, a), a);
  return doc;
}

std::optional<std::string> status_of(const json::Value& entry) {
  const json::Value* s = json::find(entry, "status");
  if (!s || !s->IsString()) return std::nullopt;
  return std::string(s->GetString(), s->GetStringLength());
}

// A copy of obj[key], or null when absent (the original copied undef, which encodes as null).
json::Value copy_or_null(const json::Value& obj, const char* key, Alloc& a) {
  const json::Value* v = json::find(obj, key);
  return v ? json::Value(*v, a) : json::Value();
}

// `^[A-Za-z0-9_-]+\.json$`
bool is_record_file(std::string_view name) {
  std::string_view reqid = RecordDir::record_name(name);
  return !reqid.empty() && is_run_reqid(reqid);
}

} // namespace

bool is_run_reqid(std::string_view reqid) {
  return is_reqid(reqid);
}

json::Document make_sync_record(std::string_view reqid, std::string_view script,
                                const std::vector<std::string>& hosts, const json::Value& results,
                                int64_t completed, const std::optional<Submitter>& submitter) {
  CX_CHECK(results.IsArray());
  json::Document doc = new_record(reqid, script, "sync");
  Alloc& a = doc.GetAllocator();
  json::Value hs(rapidjson::kArrayType);
  for (const std::string& h : hosts)
    hs.PushBack(text(h, a), a);
  add(doc, "hosts", std::move(hs), a);
  add(doc, "results", json::Value(results, a), a);
  add(doc, "completed", json::Value(completed), a);
  add(doc, "complete", json::Value(true), a);
  add_submitter(doc, submitter, a);
  return doc;
}

json::Document make_async_record(std::string_view reqid, std::string_view script,
                                 const json::Value& submit_results, int64_t created,
                                 const std::optional<Submitter>& submitter) {
  json::Document doc = new_record(reqid, script, "async");
  Alloc& a = doc.GetAllocator();
  add(doc, "created", json::Value(created), a);
  json::Value hosts(rapidjson::kObjectType);
  if (submit_results.IsArray()) {
    for (const json::Value& r : submit_results.GetArray()) {
      const json::Value* host = json::find(r, "host");
      if (!host || !host->IsString()) continue;
      std::string status = status_of(r).value_or("error");
      if (status != "accepted" && status != "busy") status = "error";
      json::Value entry(rapidjson::kObjectType);
      add(entry, "status", text(status, a), a);
      if (const json::Value* e = json::find(r, "error"); e && !e->IsNull())
        add(entry, "error", json::Value(*e, a), a);
      // A host named twice keeps its last submit result, as the original's hash did.
      set(hosts, std::string_view(host->GetString(), host->GetStringLength()), std::move(entry), a);
    }
  }
  add(doc, "hosts", std::move(hosts), a);
  add(doc, "pending", json::Value(rapidjson::kArrayType), a);
  add(doc, "complete", json::Value(false), a);
  add_submitter(doc, submitter, a);
  recompute_pending(doc);
  return doc;
}

std::vector<std::string> pending_hosts(const json::Value& record) {
  std::vector<std::string> out;
  const json::Value* hosts = json::find(record, "hosts");
  if (!hosts || !hosts->IsObject()) return out;
  for (auto it = hosts->MemberBegin(); it != hosts->MemberEnd(); ++it) {
    auto status = status_of(it->value);
    if (status == "accepted" || status == "running")
      out.emplace_back(it->name.GetString(), it->name.GetStringLength());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void recompute_pending(json::Document& record) {
  if (!record.IsObject()) return;
  Alloc& a = record.GetAllocator();
  std::vector<std::string> pending = pending_hosts(record);
  json::Value list(rapidjson::kArrayType);
  for (const std::string& h : pending)
    list.PushBack(text(h, a), a);
  set(record, "pending", std::move(list), a);
  set(record, "complete", json::Value(pending.empty()), a);
}

void apply_fetch(json::Document& record, std::string_view name, const json::Value& fetch_result) {
  if (!record.IsObject()) return;
  auto hosts = record.FindMember("hosts");
  if (hosts == record.MemberEnd() || !hosts->value.IsObject()) return;
  auto entry_it =
      hosts->value.FindMember(json::Value(rapidjson::StringRef(name.data(), name.size())));
  // Only hosts of the record are fetched; a result for any other name has nowhere to go.
  if (entry_it == hosts->value.MemberEnd()) return;
  json::Value& entry = entry_it->value;
  if (!entry.IsObject()) entry.SetObject();
  Alloc& a = record.GetAllocator();

  std::string status = status_of(fetch_result).value_or("");
  if (status == "done") {
    json::Value done(rapidjson::kObjectType);
    add(done, "status", text("done", a), a);
    add(done, "exit", copy_or_null(fetch_result, "exit", a), a);
    add(done, "stdout", copy_or_null(fetch_result, "stdout", a), a);
    add(done, "stderr", copy_or_null(fetch_result, "stderr", a), a);
    // Our agents say when output was cut or the script was killed; keep that (ours, additive).
    for (const char* flag : {"truncated", "timed_out"})
      if (const json::Value* f = json::find(fetch_result, flag); f && json::is_truthy(*f))
        add(done, flag, json::Value(true), a);
    entry = std::move(done);
  } else if (status == "running" || status == "unknown") {
    set(entry, "status", text(status == "running" ? "running" : "expired", a), a);
    entry.RemoveMember("fetch_error");
  } else {
    std::string err = "fetch failed";
    if (const json::Value* e = json::find(fetch_result, "error"))
      if (auto s = json::scalar_string(*e)) err = *s;
    set(entry, "fetch_error", text(err, a), a);
  }
}

bool host_failed(const json::Value& host_entry) {
  auto status = status_of(host_entry);
  if (status == "busy" || status == "error" || status == "expired" || status == kRunUnknown)
    return true;
  if (status != "done") return false;
  // A done entry without a readable exit code cannot be called a success.
  const json::Value* e = json::find(host_entry, "exit");
  if (!e) return true;
  if (e->IsInt64()) return e->GetInt64() != 0;
  if (e->IsNumber()) return e->GetDouble() != 0.0;
  if (auto s = json::scalar_string(*e))
    if (auto n = parse_int(trim(*s))) return *n != 0;
  return true;
}

bool is_sync_record(const json::Value& record) {
  const json::Value* mode = json::find(record, "mode");
  const json::Value* results = json::find(record, "results");
  return mode && mode->IsString() && std::string_view(mode->GetString()) == "sync" && results &&
         results->IsArray();
}

namespace {
constexpr std::string_view kRunKeys = "runs/";
constexpr std::string_view kInstanceKeys = "instances/";

std::string run_key(std::string_view reqid) {
  return std::string(kRunKeys) + std::string(reqid);
}

std::optional<json::Document> parse_record(std::string_view body) {
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject()) return std::nullopt;
  return std::move(doc).value();
}
} // namespace

Status RunStore::save(std::string_view reqid, const json::Value& record) const {
  if (!is_run_reqid(reqid)) return error("invalid reqid '" + std::string(reqid) + "'");
  if (KvStore* kv = shared_kv()) {
    std::string body = json::to_string(record);
    if (body.size() > kMaxRunRecordBytes)
      return error("run record of " + std::to_string(body.size()) + " bytes exceeds the " +
                   std::to_string(kMaxRunRecordBytes >> 20) + " MiB limit");
    // Each record carries a lease for its 24 hours: the store forgets it by itself.
    CX_ASSIGN_OR_RETURN(int64_t lease, kv->grant_lease(kv_settings().run_ttl_s));
    return kv->put(run_key(reqid), body, lease);
  }
  if (!is_directory(dir_)) {
    CX_TRY(make_dirs(dirname(dir_), 0755));
    CX_TRY(make_dirs(dir_, kDirMode));
  }
  std::string body = json::to_string(record) + "\n";
  // A record load() could not read back would be stored only to be answered 404.
  if (body.size() > kMaxRunRecordBytes)
    return error("run record of " + std::to_string(body.size()) + " bytes exceeds the " +
                 std::to_string(kMaxRunRecordBytes >> 20) + " MiB limit");
  WriteOptions opts;
  opts.mode = kRecordMode;
  return write_file_atomic(record_path(reqid), body, opts);
}

std::optional<json::Document> RunStore::load(std::string_view reqid) const {
  if (!is_run_reqid(reqid)) return std::nullopt;
  if (KvStore* kv = shared_kv()) {
    auto got = kv->get(run_key(reqid));
    if (!got.ok()) {
      log::warning("run-store-fail", {{"ERROR", got.message()}, {"REQID", std::string(reqid)}});
      return std::nullopt;
    }
    if (!*got) return std::nullopt;
    return parse_record((*got)->value);
  }
  // The directory is group-writable: a symbolic link planted as a record is not followed
  // (a `status` run by root would otherwise read its target and rewrite it into the store).
  std::string path = record_path(reqid);
  auto body = read_regular_file(path, kMaxRunRecordBytes);
  if (!body.ok()) {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      log::warning("run-store-fail", {{"ERROR", body.message()}, {"REQID", std::string(reqid)}});
    return std::nullopt;
  }
  auto doc = json::parse(*body);
  if (!doc.ok() || !doc->IsObject()) return std::nullopt;
  return std::move(doc).value();
}

Result<std::vector<std::string>> RunStore::list_reqids() const {
  std::vector<std::string> out;
  if (KvStore* kv = shared_kv()) {
    auto all = kv->list(kRunKeys);
    if (!all.ok())
      return error(all.kind(), "run store in " + kv->describe() + ": " + all.message());
    for (const KvEntry& e : *all)
      out.push_back(e.key.substr(kRunKeys.size()));
    return out;
  }
  if (!is_directory(dir_)) return out;
  CX_ASSIGN_OR_RETURN(auto names, list_dir(dir_));
  for (const std::string& name : names)
    if (is_record_file(name)) out.emplace_back(record_name(name));
  return out;
}

Status RunStore::erase(std::string_view reqid) const {
  if (!is_run_reqid(reqid)) return error("invalid reqid '" + std::string(reqid) + "'");
  if (KvStore* kv = shared_kv()) return kv->remove(run_key(reqid)).status();
  if (::unlink(record_path(reqid).c_str()) != 0 && errno != ENOENT)
    return error("cannot remove '" + record_path(reqid) + "': " + errno_text(errno));
  return {};
}

Result<std::optional<json::Document>> RunStore::fetch(std::string_view reqid) const {
  KvStore* kv = shared_kv();
  if (!kv || !is_run_reqid(reqid)) return load(reqid);
  auto got = kv->get(run_key(reqid));
  if (!got.ok()) return error(got.kind(), "run store in " + kv->describe() + ": " + got.message());
  if (!*got) return std::optional<json::Document>();
  return parse_record((*got)->value);
}

size_t RunStore::purge(int64_t now, int64_t max_age) const {
  if (shared_kv()) return 0; // records end with their leases
  auto names = list_dir(dir_);
  if (!names.ok()) return 0;
  size_t removed = 0;
  for (const std::string& name : *names) {
    if (!is_record_file(name)) continue;
    std::string path = dir_ + "/" + name;
    auto mtime = file_mtime(path);
    if (mtime && now - *mtime > max_age && ::unlink(path.c_str()) == 0) ++removed;
  }
  return removed;
}

} // namespace cx::state

namespace cx::state {

namespace {

bool is_instance_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

} // namespace

std::string api_instance_lock_path(const std::string& runs_dir, std::string_view instance) {
  return runs_dir + std::string(kInstanceDir) + "/" + std::string(instance) + ".lock";
}

json::Document make_submitted_record(std::string_view reqid, std::string_view script, bool async,
                                     const std::vector<std::string>& hosts,
                                     const std::vector<std::string>& names, int64_t created,
                                     const std::optional<Submitter>& submitter,
                                     std::string_view instance) {
  json::Document doc = new_record(reqid, script, async ? "async" : "sync");
  Alloc& a = doc.GetAllocator();
  add(doc, "status", text(kRunSubmitted, a), a);
  add(doc, "created", json::Value(created), a);
  if (async) {
    json::Value hs(rapidjson::kObjectType);
    for (const std::string& n : names) {
      json::Value entry(rapidjson::kObjectType);
      add(entry, "status", text(kRunSubmitted, a), a);
      set(hs, n, std::move(entry), a);
    }
    add(doc, "hosts", std::move(hs), a);
    add(doc, "pending", json::Value(rapidjson::kArrayType), a);
  } else {
    json::Value hs(rapidjson::kArrayType);
    for (const std::string& h : hosts)
      hs.PushBack(text(h, a), a);
    add(doc, "hosts", std::move(hs), a);
    add(doc, "results", json::Value(rapidjson::kArrayType), a);
  }
  add(doc, "complete", json::Value(false), a);
  add_submitter(doc, submitter, a);
  add(doc, "api", text(instance, a), a);
  return doc;
}

std::string run_state(const json::Value& record) {
  return status_of(record).value_or("");
}

void mark_run_unknown(json::Document& record) {
  if (!record.IsObject()) return;
  Alloc& a = record.GetAllocator();
  set(record, "status", text(kRunUnknown, a), a);
  set(record, "error", text(kRunUnknownError, a), a);
  if (auto hosts = record.FindMember("hosts");
      hosts != record.MemberEnd() && hosts->value.IsObject()) {
    for (auto& m : hosts->value.GetObject()) {
      json::Value entry(rapidjson::kObjectType);
      add(entry, "status", text(kRunUnknown, a), a);
      m.value = std::move(entry);
    }
    set(record, "pending", json::Value(rapidjson::kArrayType), a);
  }
  set(record, "complete", json::Value(true), a);
  record.RemoveMember("api");
}

Status ApiInstanceLock::acquire(const std::string& runs_dir) {
  if (KvStore* kv = shared_kv()) {
    // The key instances/<id>, bound to a lease this process keeps alive for its life.
    CX_ASSIGN_OR_RETURN(auto lease, KvLease::grant(*kv, kv_settings().lock_ttl_s));
    std::string id = random_hex(8);
    CX_ASSIGN_OR_RETURN(bool made, kv->create(std::string(kInstanceKeys) + id,
                                              iso8601_utc(unix_now()), lease->id()));
    if (!made) return error("API instance id " + id + " is taken in " + kv->describe());
    lease_ = std::move(lease);
    id_ = std::move(id);
    return {};
  }
  std::string dir = runs_dir + std::string(kInstanceDir);
  if (!is_directory(runs_dir)) CX_TRY(make_dirs(runs_dir, kDirMode));
  CX_TRY(make_dirs(dir, kDirMode));
  std::string id = random_hex(8);
  std::string tmp = dir + "/." + id + ".tmp";
  CX_TRY(lock_.lock(tmp, false, kInstanceLockMode));
  std::string path = api_instance_lock_path(runs_dir, id);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = error("cannot rename '" + tmp + "': " + errno_text(errno));
    lock_.unlock();
    ::unlink(tmp.c_str());
    return st;
  }
  id_ = std::move(id);
  return {};
}

bool api_instance_alive(const std::string& runs_dir, std::string_view instance) {
  if (!is_instance_id(instance)) return false;
  if (KvStore* kv = shared_kv()) {
    auto got = kv->get(std::string(kInstanceKeys) + std::string(instance));
    return !got.ok() || got->has_value(); // only a key seen gone proves the writer gone
  }
  std::string path = api_instance_lock_path(runs_dir, instance);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno != ENOENT; // gone once its file is
  FileLock probe;
  if (probe.lock_existing(path, false).ok()) return false; // nobody holds it
  // Held, or it cannot be opened here: only a lock seen free proves the writer gone.
  return true;
}

bool RunStore::settle_abandoned(std::string_view reqid, json::Document& record) const {
  if (run_state(record) != kRunSubmitted) return false;
  // One settler at a time in this process (the API's start-up sweep and a GET /status may meet
  // on a record), each re-reading the record first: it is marked, and logged, once.
  static std::mutex settling;
  std::lock_guard<std::mutex> lock(settling);
  auto now = load(reqid);
  if (!now) return false;
  record = std::move(*now);
  if (run_state(record) != kRunSubmitted) return false;
  const json::Value* api = json::find(record, "api");
  std::string instance = api && api->IsString() ? api->GetString() : "";
  if (api_instance_alive(dir_, instance)) return false;
  mark_run_unknown(record);
  if (Status st = save(reqid, record); !st.ok()) {
    log::warning("run-store-fail", {{"ERROR", st.message()}, {"REQID", std::string(reqid)}});
    return false;
  }
  log::warning("api-run-unknown", {{"REQID", std::string(reqid)}});
  return true;
}

std::vector<std::string> RunStore::settle_all_abandoned() const {
  std::vector<std::string> marked;
  if (KvStore* kv = shared_kv()) {
    auto all = kv->list(kRunKeys);
    if (!all.ok()) return marked;
    for (const KvEntry& e : *all) {
      if (e.value.find("\"submitted\"") == std::string::npos) continue;
      std::string reqid = e.key.substr(kRunKeys.size());
      auto doc = parse_record(e.value);
      if (doc && settle_abandoned(reqid, *doc)) marked.push_back(std::move(reqid));
    }
    return marked; // instance keys end with their leases
  }
  if (auto names = list_dir(dir_); names.ok()) {
    for (const std::string& name : *names) {
      if (!is_record_file(name)) continue;
      std::string reqid(record_name(name));
      auto text = read_regular_file(dir_ + "/" + name, kMaxRunRecordBytes);
      // Most records are final: the word is looked for before the JSON is parsed.
      if (!text.ok() || text->find("\"submitted\"") == std::string::npos) continue;
      auto doc = json::parse(*text);
      if (!doc.ok() || !doc->IsObject()) continue;
      if (settle_abandoned(reqid, *doc)) marked.push_back(std::move(reqid));
    }
  }
  // The lock files of API processes that are gone: each is removed while we hold it, so a live
  // process's lock (renamed into place already locked) is never taken for a dead one.
  std::string dir = dir_ + std::string(kInstanceDir);
  if (auto names = list_dir(dir); names.ok()) {
    for (const std::string& name : *names) {
      if (name.size() <= 5 || !name.ends_with(".lock")) continue;
      if (!is_instance_id(std::string_view(name).substr(0, name.size() - 5))) continue;
      FileLock probe;
      if (!probe.lock_existing(dir + "/" + name, false).ok()) continue;
      ::unlink((dir + "/" + name).c_str());
    }
  }
  return marked;
}

} // namespace cx::state
