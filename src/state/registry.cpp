// The agent registry; see registry.hpp.
#include "state/registry.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/kv.hpp"
#include "state/registry_index.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

constexpr const char* kKnownFields[] = {
    "hostname",
    "ip",
    "paired",
    "expiry",
    "reqid",
    "lookup_by",
    "port",
    "tags",
    "dispatcher_serial",
    "serial_status",
    "serial_broadcast",
    "serial_confirmed",
};

bool is_known_field(std::string_view k) {
  for (const char* f : kKnownFields)
    if (k == f) return true;
  return false;
}

int port_member(const json::Value& obj) {
  const json::Value* v = json::find(obj, "port");
  if (!v) return kDefaultAgentPort;
  if (v->IsInt64()) return normalize_port(v->GetInt64());
  if (v->IsString()) {
    if (auto n = parse_uint(v->GetString()); n && *n <= 65535) return normalize_port(int64_t(*n));
  }
  return kDefaultAgentPort;
}

// `name` or `name:<digits>`: the name and the port override, if any.
std::pair<std::string_view, std::optional<int>> split_ref(std::string_view ref) {
  size_t colon = ref.rfind(':');
  if (colon == std::string_view::npos) return {ref, std::nullopt};
  std::string_view digits = ref.substr(colon + 1);
  if (digits.empty() || !is_digits(digits)) return {ref, std::nullopt};
  auto n = parse_uint(digits);
  int port = (n && *n <= 65535) ? normalize_port(int64_t(*n)) : kDefaultAgentPort;
  return {ref.substr(0, colon), port};
}

std::string target_of(const AgentRecord& rec, std::optional<int> port_override) {
  std::string addr = (rec.lookup_by == "ip" && !rec.ip.empty()) ? rec.ip : rec.hostname;
  int port = port_override.value_or(rec.port);
  return port == kDefaultAgentPort ? addr : addr + ":" + std::to_string(port);
}

// The one place a registry name and its record become a dispatch target (resolve_dispatch,
// resolve_tags).
DispatchTarget dispatch_target(std::string_view name, const AgentRecord& rec,
                               std::optional<int> port_override) {
  return DispatchTarget{std::string(name), target_of(rec, port_override)};
}

void apply_serial(AgentRecord& rec, const SerialUpdate& u) {
  if (u.dispatcher_serial) rec.dispatcher_serial = *u.dispatcher_serial;
  if (u.serial_status) rec.serial_status = *u.serial_status;
  if (u.serial_broadcast) rec.serial_broadcast = *u.serial_broadcast;
  if (u.serial_confirmed) rec.serial_confirmed = *u.serial_confirmed;
}

} // namespace

std::string normalize_lookup_by(std::string_view v) {
  return v == "ip" ? "ip" : "hostname";
}

int normalize_port(int64_t v) {
  return (v >= 1 && v <= 65535) ? static_cast<int>(v) : kDefaultAgentPort;
}

Result<AgentRecord> parse_agent_record(std::string_view text, std::string_view name) {
  auto doc = json::parse_object(text);
  if (!doc.ok()) return error(std::string(name) + ".json: " + doc.message());
  const json::Value& o = *doc;
  AgentRecord r;
  r.hostname = json::scalar_or_empty(o, "hostname");
  if (r.hostname.empty()) r.hostname = std::string(name);
  r.ip = json::scalar_or_empty(o, "ip");
  r.paired = json::scalar_or_empty(o, "paired");
  r.expiry = json::scalar_or_empty(o, "expiry");
  r.reqid = json::scalar_or_empty(o, "reqid");
  r.lookup_by = normalize_lookup_by(json::scalar_or_empty(o, "lookup_by"));
  r.port = port_member(o);
  if (const json::Value* t = json::find(o, "tags"); t && t->IsObject()) {
    for (auto it = t->MemberBegin(); it != t->MemberEnd(); ++it)
      if (auto s = json::scalar_string(it->value))
        r.tags[std::string(it->name.GetString(), it->name.GetStringLength())] = *s;
  }
  r.dispatcher_serial = json::scalar_or_empty(o, "dispatcher_serial");
  r.serial_status = json::scalar_or_empty(o, "serial_status");
  if (r.serial_status.empty()) r.serial_status = std::string(kSerialUnknown);
  r.serial_broadcast = json::scalar_or_empty(o, "serial_broadcast");
  r.serial_confirmed = json::scalar_or_empty(o, "serial_confirmed");
  for (auto it = o.MemberBegin(); it != o.MemberEnd(); ++it) {
    std::string key(it->name.GetString(), it->name.GetStringLength());
    if (!is_known_field(key)) r.extra.emplace_back(std::move(key), json::to_string(it->value));
  }
  return r;
}

std::string agent_record_json(const AgentRecord& rec) {
  json::Writer w;
  w.begin_object()
      .member("hostname", rec.hostname)
      .member("ip", rec.ip)
      .member("paired", rec.paired)
      .member("expiry", rec.expiry)
      .member("reqid", rec.reqid)
      .member("lookup_by", rec.lookup_by)
      .member("port", rec.port)
      .key("tags")
      .begin_object();
  for (const auto& [k, v] : rec.tags)
    w.member(k, v);
  w.end_object()
      .member("dispatcher_serial", rec.dispatcher_serial)
      .member("serial_status", rec.serial_status)
      .member("serial_broadcast", rec.serial_broadcast)
      .member("serial_confirmed", rec.serial_confirmed);
  for (const auto& [k, v] : rec.extra)
    w.key(k).raw(v);
  w.end_object();
  return w.str();
}

Result<TagFilter> parse_tag_filter(std::string_view text) {
  TagFilter out;
  for (const std::string& piece : split(text, ',')) {
    std::string_view p = trim(piece);
    if (p.empty()) continue;
    size_t eq = p.find('=');
    if (eq == std::string_view::npos || trim(p.substr(0, eq)).empty())
      return error("invalid tag filter '" + std::string(p) + "' (expected key=value)");
    out.emplace_back(std::string(trim(p.substr(0, eq))), std::string(trim(p.substr(eq + 1))));
  }
  if (out.empty()) return error("empty tag filter (expected key=value[,key=value...])");
  return out;
}

bool tags_match(const std::map<std::string, std::string>& tags, const TagFilter& filter) {
  for (const auto& [k, v] : filter) {
    auto it = tags.find(k);
    if (it == tags.end() || it->second != v) return false;
  }
  return true;
}

Status make_state_dir(const std::string& path) {
  if (is_directory(path)) return {};
  CX_TRY(make_dirs(dirname(path), 0755));
  if (::mkdir(path.c_str(), 0770) != 0) {
    if (errno == EEXIST && is_directory(path)) return {}; // another process made it first
    return error("cannot create directory '" + path + "': " + errno_text(errno));
  }
  // mkdir(2) applies the umask and never sets the setgid bit from its mode argument.
  if (auto gid = lookup_group("ctrl-exec")) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      // Not permitted (an unprivileged user not in the group): the directory still works.
    }
  }
  if (::chmod(path.c_str(), 02770) != 0)
    return error("cannot set the mode of '" + path + "': " + errno_text(errno));
  return {};
}

std::string Registry::lock_path() const {
  return dir_ + "/.registry.lock";
}

template <typename F> auto Registry::locked(F&& fn) -> decltype(fn()) {
  FileLock lock;
  // The lock file lives in the directory, so make it first. If either fails the update goes
  // ahead unlocked, as in the original; the write itself reports any real problem.
  if (make_state_dir(dir_).ok()) (void)lock.lock(lock_path(), true, 0660);
  return fn();
}

Status Registry::write_record(std::string_view name, const AgentRecord& rec) const {
  CX_TRY(make_state_dir(dir_));
  WriteOptions opts;
  opts.mode = 0644;
  return write_file_atomic(record_path(name), agent_record_json(rec) + "\n", opts);
}

// --- With the shared store (state/kv.hpp): a record is the key agents/<name>, and every change
// is a compare-and-swap on the revision it was read at, retried when another writer came first.

namespace {

constexpr std::string_view kAgentKeys = "agents/";
constexpr int kCasAttempts = 20;

std::string agent_key(std::string_view name) {
  return std::string(kAgentKeys) + std::string(name);
}

Status kv_error(const KvStore& kv, const Status& st) {
  return error(st.kind(), "agent registry in " + kv.describe() + ": " + st.message());
}

// The record of `name` and the revision it was read at (0 and nullopt when absent or corrupt).
struct Read {
  std::optional<AgentRecord> rec;
  int64_t revision = 0;
};
Result<Read> kv_read(KvStore& kv, std::string_view name) {
  auto got = kv.get(agent_key(name));
  if (!got.ok()) return kv_error(kv, got.status());
  Read r;
  if (!*got) return r;
  r.revision = (*got)->revision;
  if (auto rec = parse_agent_record((*got)->value, name); rec.ok()) r.rec = std::move(*rec);
  return r;
}

// Reads `name`, lets `change` edit it (false: leave it), and writes it back if nobody wrote
// it meanwhile, retrying otherwise. Returns whether it wrote.
template <typename F> Result<bool> kv_update(KvStore& kv, std::string_view name, F&& change) {
  for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
    CX_ASSIGN_OR_RETURN(Read r, kv_read(kv, name));
    std::optional<AgentRecord> rec = std::move(r.rec);
    if (!change(rec) || !rec) return false;
    auto done = kv.replace(agent_key(name), r.revision, agent_record_json(*rec));
    if (!done.ok()) return kv_error(kv, done.status());
    if (*done) return true;
  }
  return error("agent registry in " + kv.describe() + ": '" + std::string(name) +
               "' kept changing under us");
}

Result<std::vector<std::pair<std::string, AgentRecord>>> kv_all(KvStore& kv) {
  auto all = kv.list(kAgentKeys);
  if (!all.ok()) return kv_error(kv, all.status());
  std::vector<std::pair<std::string, AgentRecord>> out;
  for (const KvEntry& e : *all) {
    std::string name = e.key.substr(kAgentKeys.size());
    if (!is_agent_name(name)) continue;
    if (auto rec = parse_agent_record(e.value, name); rec.ok())
      out.emplace_back(std::move(name), std::move(*rec));
  }
  return out;
}

} // namespace

Status Registry::register_agent(const AgentRecord& rec) {
  if (!is_agent_name(rec.hostname))
    return error("invalid hostname '" + rec.hostname + "' - refusing to use as a registry key");
  AgentRecord copy = rec;
  copy.lookup_by = normalize_lookup_by(copy.lookup_by);
  copy.port = normalize_port(copy.port);
  if (KvStore* kv = shared_kv()) {
    Status st = kv->put(agent_key(copy.hostname), agent_record_json(copy));
    return st.ok() ? st : kv_error(*kv, st);
  }
  return locked([&] { return write_record(copy.hostname, copy); });
}

std::optional<AgentRecord> Registry::get(std::string_view name) const {
  if (!is_agent_name(name)) return std::nullopt;
  if (KvStore* kv = shared_kv()) {
    auto r = kv_read(*kv, name);
    return r.ok() ? std::move(r->rec) : std::nullopt;
  }
  // The directory is group-writable: a symbolic link planted as a record is not followed.
  auto text = read_regular_file(record_path(name), kMaxRecordBytes);
  if (!text.ok()) return std::nullopt;
  auto rec = parse_agent_record(*text, name);
  if (!rec.ok()) return std::nullopt;
  return std::move(rec).value();
}

Result<RegistryScan> Registry::scan(IndexReport* report) const {
  if (report) *report = IndexReport{};
  if (KvStore* kv = shared_kv()) {
    CX_ASSIGN_OR_RETURN(auto all, kv_all(*kv));
    return RegistryScan::of_records(std::move(all));
  }
  if (!path_exists(dir_)) return RegistryScan();
  auto files = scan_registry(dir_, report);
  if (!files.ok() && ::access(dir_.c_str(), R_OK | X_OK) != 0 && errno == EACCES)
    return error(ErrorKind::denied, "permission denied");
  return files;
}

Result<std::vector<AgentRecord>> Registry::list(IndexReport* report) const {
  auto files = scan(report);
  if (!files.ok()) return files.status();
  std::vector<size_t> order = files->by_hostname();
  std::vector<AgentRecord> out(order.size());
  for (size_t i = 0; i < order.size(); ++i)
    files->read(order[i], out[i]);
  return out;
}

std::vector<std::string> Registry::list_hostnames() const {
  std::vector<std::string> out;
  if (KvStore* kv = shared_kv()) {
    if (auto all = kv_all(*kv); all.ok())
      for (auto& [name, rec] : *all)
        out.push_back(name);
    return out;
  }
  auto names = list_dir(dir_);
  if (!names.ok()) return out;
  for (const std::string& file : *names) {
    std::string_view name = record_name(file);
    if (!name.empty() && is_agent_name(name)) out.emplace_back(name);
  }
  return out; // list_dir sorts
}

Result<AgentRecord> Registry::remove(std::string_view name) {
  if (KvStore* kv = shared_kv()) {
    std::string missing = "No registry entry for '" + std::string(name) + "'";
    if (!is_agent_name(name)) return error(missing);
    CX_ASSIGN_OR_RETURN(Read r, kv_read(*kv, name));
    if (r.revision == 0) return error(missing);
    auto gone = kv->remove(agent_key(name));
    if (!gone.ok()) return kv_error(*kv, gone.status());
    if (!*gone) return error(missing);
    if (r.rec) return std::move(*r.rec);
    AgentRecord rec;
    rec.hostname = std::string(name); // corrupt: still removable
    return rec;
  }
  return locked([&]() -> Result<AgentRecord> {
    std::string missing = "No registry entry for '" + std::string(name) + "'";
    if (!is_agent_name(name) || !is_regular_file(record_path(name))) return error(missing);
    AgentRecord rec;
    if (auto got = get(name))
      rec = std::move(*got);
    else
      rec.hostname = std::string(name); // corrupt: still removable
    if (::unlink(record_path(name).c_str()) != 0)
      return error("cannot remove '" + record_path(name) + "': " + errno_text(errno));
    return rec;
  });
}

Result<EditResult> Registry::edit(std::string_view name, const AgentEdit& change) {
  if (KvStore* kv = shared_kv()) return edit_kv(*kv, name, change);
  return locked([&]() -> Result<EditResult> {
    auto cur = get(name);
    if (!cur) return error("No registry entry for '" + std::string(name) + "'");
    EditResult res{std::move(*cur), {}};
    AgentRecord& rec = res.record;
    if (change.ip) rec.ip = *change.ip;
    if (change.port) rec.port = normalize_port(*change.port);
    if (change.lookup_by) rec.lookup_by = normalize_lookup_by(*change.lookup_by);
    if (change.rename) {
      const std::string& to = *change.rename;
      if (!is_agent_name(to))
        return error("invalid agent name '" + to + "' (use letters, digits, '.', '-', '_')");
      if (path_exists(record_path(to))) return error("agent '" + to + "' already exists");
      res.renamed_from = std::string(name);
      rec.hostname = to;
      CX_TRY(write_record(to, rec));
      if (::unlink(record_path(name).c_str()) != 0 && errno != ENOENT)
        return error("cannot remove '" + record_path(name) + "': " + errno_text(errno));
      return res;
    }
    rec.hostname = std::string(name); // the file name is the registry key
    CX_TRY(write_record(name, rec));
    return res;
  });
}

Result<EditResult> Registry::edit_kv(KvStore& kv, std::string_view name, const AgentEdit& change) {
  for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
    CX_ASSIGN_OR_RETURN(Read r, kv_read(kv, name));
    if (!r.rec) return error("No registry entry for '" + std::string(name) + "'");
    EditResult res{std::move(*r.rec), {}};
    AgentRecord& rec = res.record;
    if (change.ip) rec.ip = *change.ip;
    if (change.port) rec.port = normalize_port(*change.port);
    if (change.lookup_by) rec.lookup_by = normalize_lookup_by(*change.lookup_by);
    Result<bool> done = false;
    if (change.rename) {
      const std::string& to = *change.rename;
      if (!is_agent_name(to))
        return error("invalid agent name '" + to + "' (use letters, digits, '.', '-', '_')");
      res.renamed_from = std::string(name);
      rec.hostname = to;
      done = kv.move(agent_key(name), r.revision, agent_key(to), agent_record_json(rec));
      if (done.ok() && !*done) {
        // Either the new name exists, or the record changed: tell which.
        auto there = kv.get(agent_key(to));
        if (!there.ok()) return kv_error(kv, there.status());
        if (*there) return error("agent '" + to + "' already exists");
      }
    } else {
      rec.hostname = std::string(name);
      done = kv.replace(agent_key(name), r.revision, agent_record_json(rec));
    }
    if (!done.ok()) return kv_error(kv, done.status());
    if (*done) return res;
  }
  return error("agent registry in " + kv.describe() + ": '" + std::string(name) +
               "' kept changing under us");
}

Result<bool> Registry::update_expiry(std::string_view name, std::string_view expiry) {
  if (KvStore* kv = shared_kv())
    return kv_update(*kv, name, [&](std::optional<AgentRecord>& rec) {
      if (!rec) return false;
      rec->expiry = std::string(expiry);
      return true;
    });
  return locked([&]() -> Result<bool> {
    auto rec = get(name);
    if (!rec) return false;
    rec->expiry = std::string(expiry);
    CX_TRY(write_record(name, *rec));
    return true;
  });
}

Result<bool> Registry::update_tags(std::string_view name,
                                   const std::map<std::string, std::string>& tags) {
  if (KvStore* kv = shared_kv())
    return kv_update(*kv, name, [&](std::optional<AgentRecord>& rec) {
      if (!rec) return false;
      rec->tags = tags;
      return true;
    });
  return locked([&]() -> Result<bool> {
    auto rec = get(name);
    if (!rec) return false;
    rec->tags = tags;
    CX_TRY(write_record(name, *rec));
    return true;
  });
}

Result<size_t> Registry::bulk_update_tags(
    const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& updates) {
  if (updates.empty()) return size_t{0};
  if (KvStore* kv = shared_kv()) {
    size_t n = 0;
    for (const auto& update : updates) {
      // Named, not structured bindings: a lambda may not capture those before C++20 compilers
      // (clang 14) allow it.
      const std::string& name = update.first;
      const std::map<std::string, std::string>& tags = update.second;
      if (!is_agent_name(name)) continue;
      CX_ASSIGN_OR_RETURN(bool wrote, kv_update(*kv, name, [&](std::optional<AgentRecord>& rec) {
                            if (!rec || rec->tags == tags) return false;
                            rec->tags = tags;
                            return true;
                          }));
      n += wrote;
    }
    return n;
  }
  return locked([&]() -> Result<size_t> {
    size_t n = 0;
    for (const auto& [name, tags] : updates) {
      auto rec = get(name); // nullopt for an invalid name too
      if (!rec || rec->tags == tags) continue;
      rec->tags = tags;
      CX_TRY(write_record(name, *rec));
      ++n;
    }
    return n;
  });
}

Status Registry::update_serial(std::string_view name, const SerialUpdate& update) {
  if (!is_agent_name(name))
    return error("invalid hostname '" + std::string(name) +
                 "' - refusing to use as a registry key");
  if (KvStore* kv = shared_kv())
    return kv_update(*kv, name,
                     [&](std::optional<AgentRecord>& rec) {
                       if (!rec) {
                         rec.emplace();
                         rec->hostname = std::string(name);
                       }
                       apply_serial(*rec, update);
                       return true;
                     })
        .status();
  return locked([&]() -> Status {
    AgentRecord rec;
    if (auto cur = get(name))
      rec = std::move(*cur);
    else
      rec.hostname = std::string(name);
    apply_serial(rec, update);
    return write_record(name, rec);
  });
}

Result<size_t>
Registry::bulk_update_serial(const std::vector<std::pair<std::string, SerialUpdate>>& updates) {
  if (updates.empty()) return size_t{0};
  if (shared_kv()) {
    size_t n = 0;
    for (const auto& [name, update] : updates) {
      if (!is_agent_name(name)) continue;
      CX_TRY(update_serial(name, update));
      ++n;
    }
    return n;
  }
  return locked([&]() -> Result<size_t> {
    size_t n = 0;
    for (const auto& [name, update] : updates) {
      if (!is_agent_name(name)) continue;
      AgentRecord rec;
      if (auto cur = get(name))
        rec = std::move(*cur);
      else
        rec.hostname = name;
      apply_serial(rec, update);
      CX_TRY(write_record(name, rec));
      ++n;
    }
    return n;
  });
}

DispatchResolution Registry::resolve_dispatch(const std::vector<std::string>& refs) const {
  DispatchResolution res;
  std::set<std::pair<std::string, std::string>> seen;
  for (const std::string& ref : refs) {
    auto [name, port] = split_ref(ref);
    std::optional<AgentRecord> rec;
    if (KvStore* kv = shared_kv(); kv && is_agent_name(name)) {
      // A store that cannot be read is not an unknown agent: say so.
      auto r = kv_read(*kv, name);
      if (!r.ok()) {
        res = DispatchResolution{};
        res.ok = false;
        res.error = r.message();
        return res;
      }
      rec = std::move(r->rec);
    } else {
      rec = get(name);
    }
    if (!rec) {
      res.unknown.push_back(ref);
      continue;
    }
    DispatchTarget t = dispatch_target(name, *rec, port);
    // A host named twice is one host: it runs once, in the place it was first named.
    if (!seen.emplace(t.name, t.target).second) continue;
    res.hosts.push_back(std::move(t));
    res.refs.push_back(ref);
  }
  if (!res.unknown.empty()) {
    res.ok = false;
    res.hosts.clear();
    res.refs.clear();
  }
  return res;
}

DispatchResolution Registry::resolve_tags(const TagFilter& filter) const {
  DispatchResolution res;
  auto files = scan();
  if (!files.ok()) {
    if (shared_kv()) { // the files' rule (an unreadable directory matches nothing) is theirs
      res.ok = false;
      res.error = files.message();
    }
    return res;
  }
  std::vector<size_t> matches;
  for (size_t i = 0; i < files->size(); ++i)
    if (files->tags_match(i, filter)) matches.push_back(i);
  // The scan is in file-name order ("a-b.json" < "a.json"), not name order ("a" < "a-b").
  std::sort(matches.begin(), matches.end(),
            [&](size_t a, size_t b) { return files->name(a) < files->name(b); });
  AgentRecord rec;
  for (size_t i : matches) {
    files->read(i, rec);
    res.hosts.push_back(dispatch_target(files->name(i), rec, std::nullopt));
    res.refs.emplace_back(files->name(i));
  }
  return res;
}

std::string Registry::resolve_target(std::string_view ref) const {
  auto [name, port] = split_ref(ref);
  auto rec = get(name);
  if (!rec) return std::string(ref);
  return target_of(*rec, port);
}

} // namespace cx::state
