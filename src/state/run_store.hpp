// The run store (dispatcher-and-api §3.3): `<reqid>.json` records of API sync runs and of every
// async run, their aggregation with the agents' /result answers, and the 24 h purge.
// Records are JSON documents: they hold whatever the agents reported, so they stay DOMs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "base/submitter.hpp"
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

// The host-failed rule of `wait` (§4.5): busy, error, expired, or done with exit != 0.
bool host_failed(const json::Value& host_entry);
// True for a record with mode "sync" and a `results` array.
bool is_sync_record(const json::Value& record);

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
  // Deletes `^[A-Za-z0-9_-]+\.json$` files whose mtime is more than `max_age` seconds before
  // `now`. Returns how many were deleted. A missing directory deletes nothing.
  size_t purge(int64_t now, int64_t max_age = kRunRetentionSeconds) const;
};

} // namespace cx::state
