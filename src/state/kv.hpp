// The dispatcher's shared state in a strongly consistent key-value store (issue 17: etcd), as
// an alternative to its files. `state_backend = etcd` in ctrl-exec.conf makes the applet open
// one store at start (cli/state_backend.hpp) and install it here; from then on the registry,
// the pairing queue, the run store and the locks of this process keep their data in it, under
// the keys below, instead of in /var/lib/ctrl-exec. Nothing changes when it is not set.
//
//   agents/<name>          a registry record, the JSON of agent_record_json
//   pairing/<id>.json      a pairing request; pairing/<id>.approved, pairing/<id>.denied
//   locks/<lock file name> a held host+script lock, bound to its holder's lease
//   runs/<reqid>           a run record, bound to a 24-hour lease
//
// The interface is synchronous: the CLI calls it inline and the API on libuv's thread pool,
// as it does the files. Every call may fail (the store is unreachable): errors name it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::state {

struct KvEntry {
  std::string key; // without the store's prefix
  std::string value;
  int64_t revision = 0; // the key's last modification: what replace() and remove_if() compare
};

class KvStore {
public:
  virtual ~KvStore() = default;
  // Where the store is, for messages ("etcd http://h1:2379,http://h2:2379").
  virtual std::string describe() const = 0;

  virtual Result<std::optional<KvEntry>> get(std::string_view key) = 0;
  // Every key that starts with `prefix`, sorted by key.
  virtual Result<std::vector<KvEntry>> list(std::string_view prefix) = 0;
  // Creates or replaces; `lease` 0 for none.
  virtual Status put(std::string_view key, std::string_view value, int64_t lease = 0) = 0;
  // Creates only if the key is absent: false when it exists.
  virtual Result<bool> create(std::string_view key, std::string_view value, int64_t lease = 0) = 0;
  // Replaces only if the key is still at `revision` (0: absent): false otherwise.
  virtual Result<bool> replace(std::string_view key, int64_t revision, std::string_view value,
                               int64_t lease = 0) = 0;
  // Deletes; false when there was nothing.
  virtual Result<bool> remove(std::string_view key) = 0;
  // Creates `to` (which must be absent) and deletes `from` (which must still be at
  // `from_revision`), both or neither: false when either condition fails.
  virtual Result<bool> move(std::string_view from, int64_t from_revision, std::string_view to,
                            std::string_view value) = 0;

  // A lease of `ttl_s` seconds; its keys go when it ends.
  virtual Result<int64_t> grant_lease(int64_t ttl_s) = 0;
  // Renews it; an error (kind `closed`) once it has ended.
  virtual Status keep_alive(int64_t lease) = 0;
  // Ends it now, deleting its keys.
  virtual Status revoke_lease(int64_t lease) = 0;
};

// How long what the store holds for us lasts without us.
struct KvSettings {
  int64_t lock_ttl_s = 10;   // a lock's lease: a holder killed with -9 loses it after this
  int64_t run_ttl_s = 86400; // a run record's lease (the files' 24-hour purge)
};

// The store of this process, or nullptr for the files (the default).
KvStore* shared_kv();
const KvSettings& kv_settings();
void set_shared_kv(std::shared_ptr<KvStore> store, KvSettings settings = {});

// A lease kept alive by a thread of its own (a keep-alive every third of its TTL) until it is
// destroyed, which revokes it: its keys go at once. When the store cannot be reached, or this
// process dies, its keys go when the TTL runs out.
class KvLease {
public:
  static Result<std::unique_ptr<KvLease>> grant(KvStore& kv, int64_t ttl_s);
  ~KvLease();
  KvLease(const KvLease&) = delete;
  KvLease& operator=(const KvLease&) = delete;
  int64_t id() const { return id_; }

  struct Keeper;

private:
  KvLease(KvStore& kv, int64_t id) : kv_(kv), id_(id) {}
  KvStore& kv_;
  int64_t id_;
  std::shared_ptr<Keeper> keeper_;
};

// A store in memory, for the unit tests of the state logic and for a single process that needs
// no persistence. Thread-safe. Leases do not time out; expire() ends one as a timeout would.
class MemoryKv final : public KvStore {
public:
  std::string describe() const override { return "memory"; }
  Result<std::optional<KvEntry>> get(std::string_view key) override;
  Result<std::vector<KvEntry>> list(std::string_view prefix) override;
  Status put(std::string_view key, std::string_view value, int64_t lease = 0) override;
  Result<bool> create(std::string_view key, std::string_view value, int64_t lease = 0) override;
  Result<bool> replace(std::string_view key, int64_t revision, std::string_view value,
                       int64_t lease = 0) override;
  Result<bool> remove(std::string_view key) override;
  Result<bool> move(std::string_view from, int64_t from_revision, std::string_view to,
                    std::string_view value) override;
  Result<int64_t> grant_lease(int64_t ttl_s) override;
  Status keep_alive(int64_t lease) override;
  Status revoke_lease(int64_t lease) override;
  void expire(int64_t lease) { (void)revoke_lease(lease); }
  // Makes every call fail as an unreachable store would, until set back.
  void set_unreachable(bool down) { down_ = down; }

private:
  struct Value {
    std::string value;
    int64_t revision;
    int64_t lease;
  };
  Status check_up() const;
  void write(std::string_view key, std::string_view value, int64_t lease);

  mutable std::mutex mu_;
  std::map<std::string, Value, std::less<>> data_;
  std::map<int64_t, bool> leases_;
  int64_t revision_ = 0;
  int64_t next_lease_ = 1;
  bool down_ = false;
};

} // namespace cx::state
