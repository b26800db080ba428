// The agent's side of privilege separation (agent-and-wire §4.8): when `executor_socket` is
// set, an authorised sync run is handed to the root executor over a unix stream socket, one
// frame each way. A transport failure is reported as the original does: exit -1, stdout "",
// stderr "executor unreachable: <reason>".
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/executor_frame.hpp"
#include "event/loop.hpp"

namespace cx::agent {

class ExecutorCall {
public:
  using DoneFn = std::function<void(ExecResponse)>;

  // Connects to `socket_path`, sends `req`, reads one response. `done` runs exactly once, from
  // the loop (never inside start()). Destroying the call cancels it: the connection is closed
  // and `done` is dropped.
  static std::unique_ptr<ExecutorCall> start(event::Loop& loop, const std::string& socket_path,
                                             const ExecRequest& req, DoneFn done);
  ~ExecutorCall();
  ExecutorCall(const ExecutorCall&) = delete;
  ExecutorCall& operator=(const ExecutorCall&) = delete;

  struct State;

private:
  ExecutorCall() = default;
  std::shared_ptr<State> state_;
};

} // namespace cx::agent
