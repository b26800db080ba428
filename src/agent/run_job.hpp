// One POST /run past the allowlist (agent-and-wire §3.4.1), shared by the sync path
// (handle_run.cpp) and the async one (handle_run_async.cpp).
#pragma once

#include <memory>
#include <string>

#include "agent/context.hpp"
#include "agent/executor_client.hpp"
#include "agent/run_stream.hpp"
#include "event/process.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

struct RunJob : Pending {
  using Pending::Pending;
  std::shared_ptr<const State> state; // the snapshot the request was checked against
  proto::RunRequest req;
  std::string path;      // the allowlisted path of req.script
  std::string timestamp; // ISO-8601 UTC, when the request was accepted
  // Live output (ours), when the request asked for it; declared before `process`, which
  // feeds it, so that the process goes first.
  std::unique_ptr<OutputStream> stream;
  std::unique_ptr<event::Process> process;
  std::unique_ptr<ExecutorCall> exec;
};

// The stdin context of the job's script (§3.5).
std::string job_context(const RunJob& job);

// An authorised async run (§3.7): refuses (reqid, owner), takes the per-script lock
// (409 when busy), writes the `running` record, starts the supervisor and answers 202. Answers
// and drops `job` in every case.
void run_async(Context& ctx, RunJob& job);

} // namespace cx::agent
