// Async runs (agent-and-wire §3.7): the per-script lock, the result records under
// <runs_dir>/<dispatcher-id>/<reqid>.json, their 24-hour purge, and the job supervisor.
//
// Design. The agent is one process with no fork per connection, yet an async job must outlive
// the agent (a restart, an upgrade). So each accepted job gets its own supervisor process: the
// agent re-executes its own binary (/proc/self/exe, else the path argv[0] resolved to at
// start) in the hidden mode `ctrl-exec-agent __async-job`, in a new session, with stdio on
// /dev/null except stdin, which carries the job as JSON and is then closed. The agent takes the
// per-script flock first (busy -> 409), writes the `running` record, and hands the locked
// descriptor to the supervisor as fd 3, so the lock is held without a gap from the check until
// the supervisor exits. The supervisor runs the script with the normal runner (same
// environment, stdin context, timeout and output cap as a sync run), or through the executor
// socket when one is configured, writes the `done` record
// atomically, and exits, releasing the lock. The shipped systemd unit uses KillMode=process so
// that stopping the agent does not kill supervisors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

inline constexpr int64_t kRecordTtlSeconds = 24 * 3600;
inline constexpr const char* kSupervisorMode = "__async-job";

// <runs_dir>/.locks/<script with [^A-Za-z0-9_.-] replaced by _>.lock
std::string async_lock_path(const std::string& runs_dir, const std::string& script);
// <runs_dir>/<owner>/<reqid>.json
std::string async_record_path(const std::string& runs_dir, const std::string& owner,
                              const std::string& reqid);
// The owner rule for record directories: ^[A-Za-z0-9][A-Za-z0-9._-]*$.
bool is_owner_id(const std::string& owner);

// Deletes *.json records older than the TTL (by mtime), both flat in runs_dir (older agents)
// and in each owner directory. Returns how many were removed.
size_t purge_async_records(const std::string& runs_dir, int64_t now,
                           int64_t ttl = kRecordTtlSeconds);

// Writes a record atomically, mode 0640, creating the owner directory (0750) if needed.
Status write_async_record(const std::string& runs_dir, const proto::ResultRecord& rec);

// What /result finds for (owner, reqid): the stored JSON text verbatim, nothing, or a record
// of another dispatcher (a legacy flat record whose owner differs).
struct RecordLookup {
  enum class Kind { found, missing, not_owner };
  Kind kind = Kind::missing;
  std::string json;   // for found: the file's content
  std::string status; // for found: the record's status ("running", "done")
};
RecordLookup find_async_record(const std::string& runs_dir, const std::string& owner,
                               const std::string& reqid);

// The job as the agent hands it to the supervisor on stdin.
struct AsyncJob {
  std::string runs_dir;
  std::string script; // allowlist name
  std::string path;   // allowlisted path
  std::vector<std::string> args;
  std::string context; // the stdin context JSON for the script
  std::string reqid;
  std::string owner;   // dispatcher id
  std::string started; // ISO-8601 UTC
  uint64_t stdin_timeout_ms = 0;
  uint64_t timeout_ms = 0;
  uint64_t output_limit = 0;
  // Set when the agent runs scripts through the executor (agent.conf executor_socket): the
  // supervisor then hands the job to it, so the script's profile applies to async runs too
  // (the original refuses async runs with an executor; docs/COMPATIBILITY.md). The script's
  // timeout is then the executor's, read from the same agent.conf.
  std::string executor_socket;

  std::string to_json() const;
  static Result<AsyncJob> from_json(std::string_view text);
};

// The command line that starts a supervisor for `job`: this binary in the hidden mode. The
// binary is found once, at the first call: /proc/self/exe when it can be executed, else
// `argv0` made absolute (through PATH when it has no slash).
void remember_argv0(const char* argv0);
std::vector<std::string> supervisor_argv(const AsyncJob& job);

// The hidden mode: reads the job from stdin, runs it, writes the `done` record, returns the
// process exit status (0, or 1 when the job could not be read or stored). Expects the per-script
// lock as fd 3 (it is kept, close-on-exec, until the process exits).
int run_async_supervisor();

} // namespace cx::agent
