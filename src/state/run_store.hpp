// The run store (dispatcher-and-api §3.3): `<reqid>.json` records of API sync runs and of every
// async run, their aggregation with the agents' /result answers, and the 24 h purge.
// Records are JSON documents: they hold whatever the agents reported, so they stay DOMs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/files.hpp"
#include "base/status.hpp"
#include "base/submitter.hpp"
#include "state/kv.hpp"
#include "state/record_dir.hpp"
#include "json/json.hpp"

namespace cx::state {

inline constexpr int64_t kRunRetentionSeconds = 86400;
// The largest record file save() writes and load() reads. Records hold the agents' stdout and
// stderr, which our agents can cap (script_output_limit); this bounds what a load may cost.
inline constexpr size_t kMaxRunRecordBytes = 64u << 20;

// `^[A-Za-z0-9_-]+$`.
bool is_run_reqid(std::string_view reqid);

// {reqid, script, mode:"sync", hosts:[as submitted], results:[...], completed:<unix>,
//  complete:true, submitter?:{username, source_ip}}. `results` must be an array; it is copied.
json::Document make_sync_record(std::string_view reqid, std::string_view script,
                                const std::vector<std::string>& hosts, const json::Value& results,
                                int64_t completed, const std::optional<Submitter>& submitter);

// {reqid, script, mode:"async", created:<unix>, hosts:{<name>:{status, error?}}, pending:[...],
//  complete:<bool>, submitter?}. Each submit result (an object with `host`, `status`, maybe
// `error`) gives its host's entry: status accepted|busy|error (absent or anything else becomes
// "error"), plus `error` when the submit result had one. pending/complete are computed.
json::Document make_async_record(std::string_view reqid, std::string_view script,
                                 const json::Value& submit_results, int64_t created,
                                 const std::optional<Submitter>& submitter);

// An async record's hosts whose status is accepted or running, sorted.
std::vector<std::string> pending_hosts(const json::Value& record);
// Recomputes `pending` and `complete` of an async record from its hosts.
void recompute_pending(json::Document& record);

// Applies one /result fetch outcome (the engine's per-host result object) to host `name` of an
// async record (§3.3 transitions):
//   status done    -> entry becomes {status:"done", exit, stdout, stderr} (plus our
//                     `truncated`/`timed_out` flags when the agent sent them true);
//   status running -> status "running", fetch_error removed;
//   status unknown -> status "expired", fetch_error removed;
//   anything else  -> status unchanged, fetch_error = result.error (default "fetch failed").
// Does not recompute pending; call recompute_pending() after the last one.
void apply_fetch(json::Document& record, std::string_view name, const json::Value& fetch_result);

// The host-failed rule of `wait` (§4.5): busy, error, expired, or done with exit != 0; and
// ours, unknown (the API stopped before it recorded the outcome).
bool host_failed(const json::Value& host_entry);
// True for a record with mode "sync" and a `results` array.
bool is_sync_record(const json::Value& record);

// --- Records written before the dispatch (ours; docs/COMPATIBILITY.md, API) -----------------
//
// The API writes a run's record before it contacts any agent, with the top-level `status`
// "submitted", and replaces it with the usual sync or async record once the dispatch is over.
// A record left "submitted" by an API process that is gone becomes "unknown": the run may have
// reached some, all or none of its hosts. Each API process holds a lock for its life
// (ApiInstanceLock), named in its submitted records, so that any process can tell whether the
// writer of a submitted record is still alive (several API processes may share the store).

inline constexpr std::string_view kRunSubmitted = "submitted";
inline constexpr std::string_view kRunUnknown = "unknown";
inline constexpr std::string_view kRunUnknownError =
    "outcome unknown: the API stopped before it recorded this run's results; the script may "
    "have run on some, all or none of the hosts";

// {reqid, script, mode, status:"submitted", created:<unix>, hosts, results:[] (sync) or
//  pending:[] (async), complete:false, submitter?, api:<instance>}. `hosts` is the list as
// submitted for a sync run, and {<name>:{status:"submitted"}} over `names` for an async one.
json::Document make_submitted_record(std::string_view reqid, std::string_view script, bool async,
                                     const std::vector<std::string>& hosts,
                                     const std::vector<std::string>& names, int64_t created,
                                     const std::optional<Submitter>& submitter,
                                     std::string_view instance);
// The record's top-level status: "submitted", "unknown", or "" for a record of the original's
// shapes (which have none).
std::string run_state(const json::Value& record);
// Turns a submitted record into an unknown one: status "unknown", `error` kRunUnknownError,
// complete true, every async host {status:"unknown", error}, `api` removed.
void mark_run_unknown(json::Document& record);

// The lock an API process holds for its life: `<runs_dir>/.api/<id>.lock`, `id` random.
class ApiInstanceLock {
public:
  // Creates the lock under a temporary name and renames it into place once locked, so that no
  // other process ever sees it unlocked.
  Status acquire(const std::string& runs_dir);
  const std::string& id() const { return id_; }

private:
  FileLock lock_;
  std::unique_ptr<KvLease> lease_; // with the shared store (state/kv.hpp)
  std::string id_;
};

// `<runs_dir>/.api/<instance>.lock`.
std::string api_instance_lock_path(const std::string& runs_dir, std::string_view instance);
// Whether the API process `instance` still holds its lock. A missing lock file means gone.
bool api_instance_alive(const std::string& runs_dir, std::string_view instance);

// `dir` is paths::runs_dir(); a record is `<reqid>.json`.
class RunStore : public RecordDir {
public:
  using RecordDir::RecordDir;

  // Atomic write: temp file in the directory, chmod 0640, rename. The directory is created
  // 0750 when missing. Errors: "invalid reqid '<r>'", "run record of <n> bytes exceeds the
  // 64 MiB limit" (kMaxRunRecordBytes, what load() reads), or the I/O failure naming the file.
  Status save(std::string_view reqid, const json::Value& record) const;
  // nullopt when the reqid is invalid, the file is absent, unreadable or not a JSON object, or
  // is not a regular file (a symbolic link is not followed; that case also logs a WARNING
  // `run-store-fail ERROR REQID`).
  std::optional<json::Document> load(std::string_view reqid) const;
  // As load(), but a shared store (state/kv.hpp) that cannot be read is an error naming it,
  // not an absent record. With the files it never fails.
  Result<std::optional<json::Document>> fetch(std::string_view reqid) const;
  // Deletes `^[A-Za-z0-9_-]+\.json$` files whose mtime is more than `max_age` seconds before
  // `now`. Returns how many were deleted. A missing directory deletes nothing.
  size_t purge(int64_t now, int64_t max_age = kRunRetentionSeconds) const;
  // Deletes the record (a run that never happened); absent is not an error.
  Status erase(std::string_view reqid) const;
  // The reqids of every record, sorted (for `ced state export`).
  Result<std::vector<std::string>> list_reqids() const;

  // If `record` (loaded as `reqid`) is submitted and its API process is gone, marks it unknown
  // and saves it (WARNING api-run-unknown REQID). The record is read again first, and `record`
  // becomes what is on disk. Returns whether it marked it.
  bool settle_abandoned(std::string_view reqid, json::Document& record) const;
  // At an API's start: every submitted record whose API process is gone becomes unknown, and
  // the lock files of gone API processes are removed. Returns the reqids marked.
  std::vector<std::string> settle_all_abandoned() const;
};

} // namespace cx::state
