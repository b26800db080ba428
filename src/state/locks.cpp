// Dispatcher lock files; see locks.hpp. Each lock is an flock on its own open file description,
// so two acquisitions of one pair conflict even inside one process: the API serves many
// requests in one process and relies on that.
#include "state/locks.hpp"

#include <algorithm>
#include <cstdint>
#include <set>

#include <unistd.h>

#include "base/hostname.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "state/registry.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

constexpr std::string_view kLockSuffix = ".lock";
constexpr mode_t kLockMode = 0660;
// A sanitised component longer than kMaxComponentBytes keeps its first kKeptComponentBytes,
// then "-" and 16 hex digits of its hash: at most 97 bytes, so that a whole name stays far
// below NAME_MAX (255) and names stay distinct.
constexpr size_t kMaxComponentBytes = 100;
constexpr size_t kKeptComponentBytes = 80;

// FNV-1a, 64 bits: stable across builds and hosts, which is all the shortening needs.
uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// The sanitised component, shortened when it is too long for a file name (ours: the original
// used it whole, and a name past NAME_MAX cannot be opened; docs/COMPATIBILITY.md).
std::string lock_name_component(std::string_view raw) {
  std::string s = sanitize_file_component(raw);
  if (s.size() <= kMaxComponentBytes) return s;
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t h = fnv1a64(s);
  std::string out = s.substr(0, kKeptComponentBytes) + "-";
  for (int shift = 60; shift >= 0; shift -= 4)
    out += kHex[(h >> shift) & 0xf];
  return out;
}

// One (host, script) pair of a request, with its lock file.
struct Pair {
  std::string host;
  std::string file;
};

// The pairs of a request in input order, each lock file once: duplicate hosts, and host
// strings that sanitise to the same file name, would otherwise conflict with ourselves.
std::vector<Pair> unique_pairs(const std::vector<std::string>& hosts, std::string_view script) {
  std::vector<Pair> out;
  std::set<std::string> seen;
  for (const std::string& h : hosts) {
    std::string file = lock_file_name(h, script);
    if (seen.insert(file).second) out.push_back({h, std::move(file)});
  }
  return out;
}

// Whether someone else holds the lock at `path`. A missing lock file is not held, and probing
// does not create it. A lock file that cannot be opened or locked for another reason (such as
// a symbolic link planted in its place) is not reported: the probe cannot tell, and acquire()
// reports the failure.
bool held_elsewhere(const std::string& path) {
  FileLock probe;
  if (probe.lock_existing(path, false).ok()) return false; // released when `probe` goes
  return probe.busy();
}

// `<host>--<script>.lock` split as the original's greedy ^(.+)--(.+)\.lock$: on the last "--"
// that leaves a non-empty script. false when the name does not match.
bool split_lock_name(std::string_view name, HeldLock& out) {
  if (name.size() <= kLockSuffix.size() || !name.ends_with(kLockSuffix)) return false;
  std::string_view stem = name.substr(0, name.size() - kLockSuffix.size());
  if (stem.size() < 4) return false;
  for (size_t p = stem.size() - 3;; --p) { // p + 2 < stem.size(): the script is not empty
    if (stem[p] == '-' && stem[p + 1] == '-') {
      out.host = std::string(stem.substr(0, p));
      out.script = std::string(stem.substr(p + 2));
      return true;
    }
    if (p == 1) return false; // p >= 1: the host is not empty
  }
}

// --- With the shared store (state/kv.hpp): a lock is the key locks/<lock file name>, created
// only if absent and bound to the acquiring process's lease. -----------------------------------

constexpr std::string_view kLockKeys = "locks/";

std::string lock_value(const std::string& host, std::string_view script) {
  json::Writer w;
  w.begin_object()
      .member("host", host)
      .member("script", script)
      .member("holder", host_fqdn())
      .member("pid", static_cast<int64_t>(::getpid()))
      .member("acquired", iso8601_utc(unix_now()))
      .end_object();
  return w.str();
}

} // namespace

std::string lock_file_name(std::string_view host, std::string_view script) {
  return lock_name_component(host) + "--" + lock_name_component(script) + std::string(kLockSuffix);
}

void LockSet::release() {
  if (locks_.empty() && !lease_) return;
  for (FileLock& l : locks_)
    l.unlock();
  locks_.clear();
  lease_.reset(); // revoked: its keys go
  log::info("lock-release", {{"HOSTS", join(hosts_, ",")}, {"SCRIPT", script_}});
  hosts_.clear();
  script_.clear();
}

Locks::Locks(std::string dir) : dir_(std::move(dir)) {}

std::vector<std::string> Locks::check_available(const std::vector<std::string>& hosts,
                                                std::string_view script) const {
  std::vector<std::string> conflicts;
  if (KvStore* kv = shared_kv()) {
    for (const Pair& p : unique_pairs(hosts, script)) {
      auto got = kv->get(std::string(kLockKeys) + p.file);
      if (!got.ok() || *got) conflicts.push_back(p.host + ":" + std::string(script));
    }
    return conflicts;
  }
  // A missing directory holds no locks. Unlike the original, probing creates no lock files
  // (docs/COMPATIBILITY.md): a missing one is simply not held.
  if (!is_directory(dir_)) return conflicts;
  for (const Pair& p : unique_pairs(hosts, script))
    if (held_elsewhere(dir_ + "/" + p.file))
      conflicts.push_back(p.host + ":" + std::string(script));
  return conflicts;
}

Acquisition Locks::acquire(const std::vector<std::string>& hosts, std::string_view script) const {
  Acquisition a;
  if (KvStore* kv = shared_kv()) return acquire_kv(*kv, hosts, script);
  a.status = make_state_dir(dir_);
  if (!a.status.ok()) return a;
  std::vector<FileLock> taken;
  std::vector<std::string> taken_hosts;
  for (const Pair& p : unique_pairs(hosts, script)) {
    FileLock lock;
    Status st = lock.lock(dir_ + "/" + p.file, false, kLockMode);
    if (st.ok()) {
      taken.push_back(std::move(lock));
      taken_hosts.push_back(p.host);
    } else if (lock.busy()) {
      // Keep going, so that every conflicting pair is reported, not just the first.
      a.conflicts.push_back(p.host + ":" + std::string(script));
    } else {
      a.status = st; // `taken` unlocks as it goes out of scope; nothing was logged yet
      return a;
    }
  }
  if (!a.conflicts.empty()) {
    taken.clear(); // all or nothing: give back the pairs we did get
    log::warning("lock-conflict", {{"CONFLICTS", join(a.conflicts, ",")}});
    return a;
  }
  for (const std::string& h : taken_hosts)
    log::info("lock-acquire", {{"HOST", h}, {"SCRIPT", std::string(script)}});
  a.held.locks_ = std::move(taken);
  a.held.hosts_ = std::move(taken_hosts);
  a.held.script_ = std::string(script);
  return a;
}

Acquisition Locks::acquire_kv(KvStore& kv, const std::vector<std::string>& hosts,
                              std::string_view script) const {
  Acquisition a;
  auto lease = KvLease::grant(kv, kv_settings().lock_ttl_s);
  if (!lease.ok()) {
    a.status =
        error(lease.kind(), "cannot take locks in " + kv.describe() + ": " + lease.message());
    return a;
  }
  std::shared_ptr<KvLease> held(std::move(*lease));
  std::vector<std::string> taken_hosts;
  for (const Pair& p : unique_pairs(hosts, script)) {
    auto made = kv.create(std::string(kLockKeys) + p.file, lock_value(p.host, script), held->id());
    if (!made.ok()) {
      a.status =
          error(made.kind(), "cannot take locks in " + kv.describe() + ": " + made.message());
      return a; // `held` is revoked as it goes: the pairs taken go with it
    }
    if (*made)
      taken_hosts.push_back(p.host);
    else
      a.conflicts.push_back(p.host + ":" + std::string(script));
  }
  if (!a.conflicts.empty()) {
    log::warning("lock-conflict", {{"CONFLICTS", join(a.conflicts, ",")}});
    return a;
  }
  for (const std::string& h : taken_hosts)
    log::info("lock-acquire", {{"HOST", h}, {"SCRIPT", std::string(script)}});
  a.held.lease_ = std::move(held);
  a.held.hosts_ = std::move(taken_hosts);
  a.held.script_ = std::string(script);
  return a;
}

std::vector<HeldLock> Locks::list_held(Status* failure) const {
  std::vector<HeldLock> out;
  if (KvStore* kv = shared_kv()) {
    auto all = kv->list(kLockKeys);
    if (!all.ok()) {
      if (failure)
        *failure = error(all.kind(), "locks in " + kv->describe() + ": " + all.message());
      return out;
    }
    for (const KvEntry& e : *all) {
      HeldLock h;
      if (split_lock_name(std::string_view(e.key).substr(kLockKeys.size()), h))
        out.push_back(std::move(h));
    }
    return out; // sorted by key, which sorts as host:script does for these names
  }
  auto names = list_dir(dir_);
  if (!names.ok()) return out;
  for (const std::string& name : *names) {
    HeldLock h;
    if (split_lock_name(name, h) && held_elsewhere(dir_ + "/" + name)) out.push_back(std::move(h));
  }
  std::sort(out.begin(), out.end(), [](const HeldLock& a, const HeldLock& b) {
    return a.host + ":" + a.script < b.host + ":" + b.script;
  });
  return out;
}

} // namespace cx::state
