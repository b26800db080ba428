// The shared key-value store; see kv.hpp.
#include "state/kv.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>

namespace cx::state {

namespace {
std::shared_ptr<KvStore>& installed() {
  static std::shared_ptr<KvStore> store;
  return store;
}
KvSettings& installed_settings() {
  static KvSettings settings;
  return settings;
}
} // namespace

KvStore* shared_kv() {
  return installed().get();
}

const KvSettings& kv_settings() {
  return installed_settings();
}

void set_shared_kv(std::shared_ptr<KvStore> store, KvSettings settings) {
  installed() = std::move(store);
  installed_settings() = settings;
}

// --- KvLease ---------------------------------------------------------------------------------

struct KvLease::Keeper {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};

Result<std::unique_ptr<KvLease>> KvLease::grant(KvStore& kv, int64_t ttl_s) {
  CX_ASSIGN_OR_RETURN(int64_t id, kv.grant_lease(ttl_s));
  std::unique_ptr<KvLease> lease(new KvLease(kv, id));
  auto k = std::make_shared<Keeper>();
  auto period = std::chrono::milliseconds(std::max<int64_t>(ttl_s * 1000 / 3, 100));
  k->thread = std::thread([k, &kv, id, period] {
    std::unique_lock lock(k->mu);
    while (!k->cv.wait_for(lock, period, [&] { return k->stop; })) {
      lock.unlock();
      Status st = kv.keep_alive(id);
      lock.lock();
      if (!st.ok() && st.kind() == ErrorKind::closed) return; // ended: nothing left to keep
    }
  });
  lease->keeper_ = std::move(k);
  return lease;
}

KvLease::~KvLease() {
  {
    std::lock_guard lock(keeper_->mu);
    keeper_->stop = true;
  }
  keeper_->cv.notify_all();
  keeper_->thread.join();
  (void)kv_.revoke_lease(id_); // unreachable: the keys go with the TTL
}

// --- MemoryKv --------------------------------------------------------------------------------

Status MemoryKv::check_up() const {
  if (down_) return error(ErrorKind::unreachable, "memory store: unreachable");
  return {};
}

void MemoryKv::write(std::string_view key, std::string_view value, int64_t lease) {
  data_[std::string(key)] = Value{std::string(value), ++revision_, lease};
}

Result<std::optional<KvEntry>> MemoryKv::get(std::string_view key) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  auto it = data_.find(key);
  if (it == data_.end()) return std::optional<KvEntry>();
  return std::optional<KvEntry>(KvEntry{it->first, it->second.value, it->second.revision});
}

Result<std::vector<KvEntry>> MemoryKv::list(std::string_view prefix) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  std::vector<KvEntry> out;
  for (auto it = data_.lower_bound(prefix); it != data_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back({it->first, it->second.value, it->second.revision});
  }
  return out;
}

Status MemoryKv::put(std::string_view key, std::string_view value, int64_t lease) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  if (lease && !leases_.count(lease))
    return error("memory store: no lease " + std::to_string(lease));
  write(key, value, lease);
  return {};
}

Result<bool> MemoryKv::create(std::string_view key, std::string_view value, int64_t lease) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  if (lease && !leases_.count(lease))
    return error("memory store: no lease " + std::to_string(lease));
  if (data_.count(key)) return false;
  write(key, value, lease);
  return true;
}

Result<bool> MemoryKv::replace(std::string_view key, int64_t revision, std::string_view value,
                               int64_t lease) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  auto it = data_.find(key);
  int64_t now = it == data_.end() ? 0 : it->second.revision;
  if (now != revision) return false;
  write(key, value, lease);
  return true;
}

Result<bool> MemoryKv::remove(std::string_view key) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  auto it = data_.find(key);
  if (it == data_.end()) return false;
  data_.erase(it);
  ++revision_;
  return true;
}

Result<bool> MemoryKv::move(std::string_view from, int64_t from_revision, std::string_view to,
                            std::string_view value) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  auto it = data_.find(from);
  if (it == data_.end() || it->second.revision != from_revision || data_.count(to)) return false;
  data_.erase(it);
  write(to, value, 0);
  return true;
}

Result<int64_t> MemoryKv::grant_lease(int64_t) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  int64_t id = next_lease_++;
  leases_[id] = true;
  return id;
}

Status MemoryKv::keep_alive(int64_t lease) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  if (!leases_.count(lease)) return error(ErrorKind::closed, "memory store: lease has ended");
  return {};
}

Status MemoryKv::revoke_lease(int64_t lease) {
  std::lock_guard lock(mu_);
  CX_TRY(check_up());
  leases_.erase(lease);
  for (auto it = data_.begin(); it != data_.end();)
    it = it->second.lease == lease ? data_.erase(it) : std::next(it);
  return {};
}

} // namespace cx::state
