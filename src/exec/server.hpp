// `ctrl-exec-exec serve`: the root half of the privilege-separated agent (agent-and-wire §4.8).
// One libuv loop on a unix stream socket that only the agent's user (and root) may use. Each
// connection carries one request frame; the executor re-derives the script's path and profile
// from its own reading of agent.conf and scripts.conf, runs the script confined (each run its
// own child, through the trampoline in confine.hpp) with the agent's per-run limits, and
// answers one response frame. No fork per connection (the original forks; docs/COMPATIBILITY.md).
#pragma once

#include <string>

namespace cx::exec {

struct ServeOptions {
  std::string socket_path;
  std::string agent_conf;
  std::string scripts_conf;
  std::string peer_user;
};

// Runs until SIGTERM or SIGINT. Returns the process exit status: 0 after a signal, 1 when not
// root or the socket cannot be set up, 78 for a bad configuration or an unknown peer user. The
// reason is printed on stderr first.
int serve(const ServeOptions& opts);

// How long a client may take to send its whole request frame.
inline constexpr uint64_t kRequestDeadlineMs = 10'000;

} // namespace cx::exec
