// The auth hook: the policy engine of both the dispatcher (CLI and API) and the agent.
// The hook is executed with no arguments and no shell; it gets one compact JSON object on
// stdin and the same facts as ENVEXEC_* variables, and its exit code decides: 0 allows, 1, 2
// and 3 deny with fixed reasons, anything else denies as "hook exited N".
// Contract: dispatcher-and-api §7, agent-and-wire §4.7. Deliberate difference: a hook killed
// by a signal denies (the original read it as exit 0 = allow); see docs/COMPATIBILITY.md.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/submitter.hpp"
#include "event/loop.hpp"

namespace cx::hook {

enum class Caller { cli, api, agent };

struct Policy {
  std::string hook_path;          // empty: no hook configured
  unsigned timeout_s = 10;        // 0: no timeout
  bool api_default_allow = false; // api_auth_default = allow (API only, no hook)
  Caller caller = Caller::api;
};

using Submitter = cx::Submitter;

struct Request {
  std::string action; // api, run, ping, status (dispatcher); run, discovery, rotate (agent)
  std::string script;
  std::vector<std::string> hosts;
  std::vector<std::string> args;
  std::string username, token, source_ip;
  std::string dispatcher, dispatcher_serial; // filled by the agent only
  std::string reqid;
  std::optional<Submitter> submitter;
  // The tag selector the hosts were chosen by (`--tags`, the API's `tags`; ours), in the
  // order given: ENVEXEC_TAGS ("k=v,k=v", empty without one) and, only with one, a `tags`
  // object in the stdin document.
  std::optional<std::vector<std::pair<std::string, std::string>>> tags;
};
// "k=v,k=v" of a selector, in its order.
std::string tags_text(const std::vector<std::pair<std::string, std::string>>& tags);

struct Decision {
  bool allowed = false;
  std::string reason; // "denied", "bad credentials", "insufficient privilege", "hook exited N",...
  int code = 0;       // the hook's exit code (1 for our own denials)
};

// The stdin document and the environment the hook receives; exposed for tests.
std::string stdin_json(const Request& req, const std::string& timestamp);
std::vector<std::string> environment(const Request& req, const std::string& timestamp,
                                     char** parent_env);

// One running check. Destroying it before it completes kills the hook and drops the callback.
class Check {
public:
  using DoneFn = std::function<void(Decision)>;
  // Applies the decision table of dispatcher-and-api §7.1 (no hook, hook not executable,
  // run the hook) and logs the `auth` line. `done` always runs from the loop, never inside
  // start().
  static std::unique_ptr<Check> start(event::Loop& loop, const Policy& policy, Request req,
                                      DoneFn done);
  ~Check();
  Check(const Check&) = delete;
  Check& operator=(const Check&) = delete;

  struct State;

private:
  Check() = default;
  std::shared_ptr<State> state_;
};

// Maps a finished hook to a decision (exit 0..3, other codes, signals, exec failures).
Decision decide(int exit_code, int signal, bool timed_out, bool exec_failed);

} // namespace cx::hook
