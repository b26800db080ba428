// Dispatcher lock files (dispatcher-and-api §3.4): `<host>--<script>.lock` in the locks
// directory, held by an exclusive non-blocking flock. The original only *tested* these locks;
// we hold them for the length of a dispatch (QUIRK §8, docs/COMPATIBILITY.md), so a second
// concurrent run of the same host and script is refused as "locked".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/files.hpp"
#include "base/status.hpp"
#include "state/kv.hpp"

namespace cx::state {

// "<H>--<S>.lock", where H is the host string as the operator gave it (before registry
// resolution, so "web-01:7450" gives "web-01_7450") and S the script name, each with every
// character outside [A-Za-z0-9_.-] replaced by '_'. A sanitised component longer than 100
// bytes becomes its first 80 bytes, "-" and 16 hex digits of a hash of the whole component, so
// the name stays below NAME_MAX (ours; docs/COMPATIBILITY.md). Lock files are regular files:
// a symbolic link in the directory is never followed.
std::string lock_file_name(std::string_view host, std::string_view script);

struct HeldLock {
  std::string host, script;
  bool operator==(const HeldLock&) const = default;
};

// Locks held for one dispatch; released (flock dropped, file kept) when destroyed or release()d.
class LockSet {
public:
  LockSet() = default;
  ~LockSet() { release(); }
  LockSet(LockSet&&) noexcept = default;
  LockSet& operator=(LockSet&& o) noexcept {
    if (this != &o) {
      release();
      locks_ = std::move(o.locks_);
      lease_ = std::move(o.lease_);
      hosts_ = std::move(o.hosts_);
      script_ = std::move(o.script_);
    }
    return *this;
  }
  LockSet(const LockSet&) = delete;
  LockSet& operator=(const LockSet&) = delete;

  // Drops every lock and logs `lock-release HOSTS=<h1,h2> SCRIPT=<s>` once (nothing when empty).
  void release();
  size_t size() const { return locks_.size() + (lease_ ? hosts_.size() : 0); }

private:
  friend class Locks;
  std::vector<FileLock> locks_;
  // With the shared store (state/kv.hpp): the lease the pairs' keys are bound to.
  std::shared_ptr<KvLease> lease_;
  std::vector<std::string> hosts_;
  std::string script_;
};

struct Acquisition {
  LockSet held;                       // every pair, when conflicts is empty; otherwise nothing
  std::vector<std::string> conflicts; // "<host>:<script>" in input order
  Status status;                      // an I/O failure (the directory cannot be created...)
  bool ok() const { return status.ok() && conflicts.empty(); }
};

class Locks {
public:
  // `dir` is paths::locks_dir() (created with make_state_dir when first needed).
  explicit Locks(std::string dir);
  const std::string& dir() const { return dir_; }

  // Probes each (host, script) pair with a non-blocking exclusive flock and releases it at
  // once. Returns the pairs someone else holds, as "<host>:<script>", in input order.
  // Duplicate hosts are probed once. A missing lock file is not held and is not created.
  std::vector<std::string> check_available(const std::vector<std::string>& hosts,
                                           std::string_view script) const;

  // Takes every pair or none: on the first conflict the pairs already taken are released,
  // every conflicting pair is reported, and `lock-conflict CONFLICTS=<a,b>` is logged
  // (WARNING). On success logs `lock-acquire HOST=<h> SCRIPT=<s>` per pair. A new lock file
  // is chmod 0660. Duplicate hosts are locked once.
  Acquisition acquire(const std::vector<std::string>& hosts, std::string_view script) const;

  // Every `<host>--<script>.lock` currently held by someone, probed as in check_available,
  // sorted by "host:script". The name splits as the original's greedy ^(.+)--(.+)\.lock$
  // does: on the last "--" (a shortened long host or script is listed shortened). A missing
  // directory holds no locks.
  // With a shared store (state/kv.hpp) that cannot be read, `failure` (when given) gets why and
  // the list is empty.
  std::vector<HeldLock> list_held(Status* failure = nullptr) const;

private:
  Acquisition acquire_kv(KvStore& kv, const std::vector<std::string>& hosts,
                         std::string_view script) const;
  std::string dir_;
};

} // namespace cx::state
