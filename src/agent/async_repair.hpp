// Async records whose job supervisor is gone (issue 13, item 4). A `running` record is
// rewritten by its supervisor only; if the supervisor dies without writing `done` (the agent's
// whole process tree killed, a host restart, the supervisor itself killed), nothing else ever
// would, and the dispatcher would see the job running until the record expires a day later.
// So the agent looks for such records at start and then periodically, and marks each one done
// with exit -1 and the error kAsyncInterrupted.
//
// How a supervisor is known to be gone: it holds its script's flock (async_job.hpp) from before
// the `running` record is written until it exits, after writing `done`. So a record that still
// says `running` while its script's lock is free belongs to no live supervisor. The lock is
// probed on the loop thread, where run_async also takes it: a probe never overlaps a submission
// (which would then be refused as busy), and a record cannot be caught between its write and its
// supervisor's start. The record is re-read just before it is replaced, so a `done` written
// meanwhile is kept. A lock that is held proves only that some job of that script is alive: a
// stale record of the same script is then repaired once that job has ended.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "event/loop.hpp"

namespace cx::agent {

// The error and stderr of an interrupted job's record.
inline constexpr const char* kAsyncInterrupted =
    "interrupted: the job's supervisor ended without a result (agent or host restarted)";

// A record that says `running`, as found on disk.
struct RunningRecord {
  std::string path; // the record file: <runs_dir>/<owner>/<reqid>.json, or flat
  std::string reqid, script, owner, started;
};

// The running records of runs_dir, in the owner directories and flat (older agents). A running
// record is small: files above 16 KiB are not read. Symbolic links are not followed.
std::vector<RunningRecord> find_running_records(const std::string& runs_dir);

// What probing a script's lock found.
enum class LockProbe { free, held, unknown }; // unknown: no lock file, or it cannot be opened
// Takes the script's lock without waiting and lets it go at once. Never creates the file.
LockProbe probe_async_lock(const std::string& runs_dir, const std::string& script);

// Re-reads the record and, if it still says running (same reqid and start), replaces it
// atomically with {status:"done", exit:-1, stdout:"", stderr and error kAsyncInterrupted,
// finished}. Returns whether it was replaced.
Result<bool> mark_interrupted(const RunningRecord& rec, const std::string& finished);

// Runs the repair on the loop: a sweep at start(), then one every `period_ms`. Listing and
// reading the records and rewriting them happen on libuv's thread pool; the lock probes on
// the loop, in slices. Each repaired record logs WARNING `async-interrupted DISPATCHER REQID
// SCRIPT`. `runs_dir` is asked at each sweep (a reload may change it).
class AsyncRecordRepair {
public:
  AsyncRecordRepair(event::Loop& loop, std::function<std::string()> runs_dir,
                    uint64_t period_ms = 30000);
  AsyncRecordRepair(const AsyncRecordRepair&) = delete;
  AsyncRecordRepair& operator=(const AsyncRecordRepair&) = delete;

  void start();
  // Sweeps now unless a sweep is under way; `done` (optional) runs once this one has ended.
  void sweep(std::function<void()> done = {});
  // Sweeps finished since start (for tests).
  uint64_t sweeps() const { return sweeps_; }

private:
  struct Sweep;
  void probe_slice(std::shared_ptr<Sweep> sweep);
  void rewrite(std::shared_ptr<Sweep> sweep);
  void finish(const std::shared_ptr<Sweep>& sweep);

  event::Loop& loop_;
  std::function<std::string()> runs_dir_;
  uint64_t period_ms_;
  event::Timer timer_;
  bool busy_ = false;
  uint64_t sweeps_ = 0;
  event::Liveness liveness_;
};

} // namespace cx::agent
