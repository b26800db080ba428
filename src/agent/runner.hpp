// The script runner (agent-and-wire §3.5-3.6): execve of the allowlisted path with the exact
// argv, never a shell; a clean environment; the JSON context on stdin, then EOF; stdout and
// stderr drained concurrently. Exit codes as the original reports them: the script's status,
// 126 when killed by a signal, 127 when exec fails, -1 when it could not be started.
// Our additions (docs/COMPATIBILITY.md): script_timeout kills the process group, and
// script_output_limit caps each stream with a `truncated` flag. Both are off by default.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/loop.hpp"
#include "event/process.hpp"

namespace cx::agent {

// What a script reads on stdin, as compact JSON:
// {"script","args","reqid","peer_ip","username","token","dispatcher","timestamp"}.
struct ScriptContext {
  std::string script;
  std::vector<std::string> args;
  std::string reqid;
  std::string peer_ip;
  std::string username;
  std::string token;
  std::string dispatcher;
  std::string timestamp; // ISO-8601 UTC, when the request was handled
};
std::string context_json(const ScriptContext& c);

// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, plus HOME LANG LC_ALL TZ
// TERM USER LOGNAME when `parent_env` has them. Nothing else (no LD_*, no BASH_ENV).
std::vector<std::string> script_environment(char** parent_env);

struct RunSpec {
  std::string path; // the allowlisted absolute path; argv[0] as well
  std::vector<std::string> args;
  std::string stdin_data;        // the context JSON
  uint64_t stdin_timeout_ms = 0; // stdin_timeout
  // Runs when stdin_timeout gives up on writing the context, with the bytes left unwritten.
  std::function<void(size_t unwritten)> on_stdin_timeout;
  uint64_t timeout_ms = 0; // script_timeout; 0 = none (the original's behaviour)
  size_t output_limit = 0; // script_output_limit per stream; 0 = unlimited
  // Each piece of output as it is read, within the cap (event::ProcessOptions::on_output).
  std::function<void(bool is_out, std::string_view kept)> on_output;
};

struct RunOutcome {
  int exit = -1;
  std::string out, err;
  bool truncated = false; // a stream hit output_limit
  bool timed_out = false; // killed by script_timeout
  // Set for a timeout, an exec failure or a spawn failure (also appended to `err` for the
  // last two, as the original puts the error text in stderr).
  std::optional<std::string> error;
  std::optional<size_t> stdin_unwritten; // stdin_timeout hit: bytes never written
};

// Logs `stdin-timeout BYTES` when it happens, as the original does (not when the script ends).
void log_stdin_timeout(size_t unwritten);

// Maps a finished process to the agent's result.
RunOutcome outcome_from(event::ProcessResult r, const RunSpec& spec);

// Starts the script; `done` runs once, from the loop. Destroying the returned Process kills the
// script's process group.
std::unique_ptr<event::Process> start_script(event::Loop& loop, const RunSpec& spec,
                                             std::function<void(RunOutcome)> done);

} // namespace cx::agent
