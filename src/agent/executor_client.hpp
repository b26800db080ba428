// The agent's side of privilege separation (agent-and-wire §4.8): when `executor_socket` is
// set, an authorised sync run is handed to the root executor over a unix stream socket, one
// frame each way. A transport failure is reported as the original does: exit -1, stdout "",
// stderr "executor unreachable: <reason>".
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/runner.hpp"
#include "event/loop.hpp"
#include "proto/executor_frame.hpp"

namespace cx::agent {

using proto::ExecRequest;
using proto::ExecResponse;

class ExecutorCall {
public:
  using DoneFn = std::function<void(ExecResponse)>;

  // Connects to `socket_path`, sends `req`, reads one response. `done` runs exactly once, from
  // the loop (never inside start()). With `timeout_ms`, a response that has not arrived by then
  // is a failure ("no answer within <n>s"): a backstop for an executor that applies no
  // deadline of its own (the original's). Destroying the call cancels it: the connection is
  // closed and `done` is dropped.
  static std::unique_ptr<ExecutorCall> start(event::Loop& loop, const std::string& socket_path,
                                             const ExecRequest& req, DoneFn done,
                                             uint64_t timeout_ms = 0);
  ~ExecutorCall();
  ExecutorCall(const ExecutorCall&) = delete;
  ExecutorCall& operator=(const ExecutorCall&) = delete;

  struct State;

private:
  ExecutorCall() = default;
  std::shared_ptr<State> state_;
};

// The agent's result for an executor's answer: its exit and output, with the limits the
// executor applied (the truncation marker, the timeout line) turned back into `truncated`,
// `timed_out` and the error a direct run reports.
RunOutcome outcome_from_executor(ExecResponse resp);

// The backstop deadline for a run through the executor: the script's own timeout and a grace
// of kExecutorGraceMs, or none when script_timeout is 0 (the original has none).
inline constexpr uint64_t kExecutorGraceMs = 10'000;
uint64_t executor_call_timeout_ms(int64_t script_timeout_s);

} // namespace cx::agent
