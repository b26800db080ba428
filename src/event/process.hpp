// A child process runner: no shell, an exact argv, a replaced environment, stdin written and
// then closed, stdout and stderr drained concurrently (so large output on both never
// deadlocks), an optional per-stream output cap, and an optional deadline that kills the
// child's whole process group.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/loop.hpp"

namespace cx::event {

struct ProcessOptions {
  std::vector<std::string> argv; // argv[0] is executed as given: no PATH search, no shell
  std::optional<std::vector<std::string>> env; // "KEY=VALUE" entries; nullopt inherits ours
  std::string cwd;                             // empty inherits ours
  std::string stdin_data;                      // written, then stdin is closed (EOF)
  uint64_t stdin_timeout_ms = 0;               // give up writing stdin after this (0 = no limit)
  // Called from the loop when stdin_timeout_ms gives up, with the bytes never written (the
  // child keeps running; the result reports the same numbers when it ends).
  std::function<void(size_t unwritten)> on_stdin_timeout;
  bool capture_output = true; // false sends stdout and stderr to /dev/null
  size_t output_limit = 0;    // bytes kept per stream; the rest is drained (0 = no limit)
  // Called from the loop with each piece of output as it is read, after the cap (only the
  // bytes that are kept; nothing once a stream is full): true for stdout, false for stderr.
  std::function<void(bool is_out, std::string_view kept)> on_output;
  uint64_t timeout_ms = 0; // SIGKILL the process group after this (0 = no limit)
  // The child keeps running if we exit, and does not keep our loop alive.
  bool detached = false;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Open descriptors handed to the child as fds 3, 4, ... in this order (e.g. a held lock).
  std::vector<int> inherit_fds;
};

struct ProcessResult {
  enum class Outcome { exited, signaled, exec_failed, spawn_failed };
  Outcome outcome = Outcome::spawn_failed;
  int exit_code = 0; // for `exited`
  int signal = 0;    // for `signaled`
  bool timed_out = false;
  std::string error;  // for exec_failed / spawn_failed: what went wrong
  int error_code = 0; // the libuv error for exec_failed / spawn_failed
  std::string out, err;
  bool out_truncated = false, err_truncated = false;
  bool stdin_timed_out = false;
  size_t stdin_unwritten = 0;
};

class Process {
public:
  using DoneFn = std::function<void(ProcessResult)>;

  // Starts the child. `done` runs exactly once: when it has exited and both pipes are drained,
  // or (from a later loop iteration, never inside start()) when it could not be started.
  // Destroying the Process before then kills the child's process group and drops `done`;
  // a detached child is left running.
  static std::unique_ptr<Process> start(Loop& loop, ProcessOptions opts, DoneFn done);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  // Signals the child's whole process group.
  void kill_group(int signum);

  struct Impl;

private:
  Process() = default;
  int pid_ = 0;
  std::shared_ptr<Impl> impl_;
};

} // namespace cx::event
