// Detaching work from a command: this binary re-executed in a new session, the one way a
// command hands work to a background process (`pairing-mode start`, `request-pairing
// --background`). Callers run no event loop yet, so fork-then-exec is safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/status.hpp"

namespace cx {

struct DetachedChild {
  std::vector<std::string> argv; // argv[0] and on; argv[1] names the applet to run
  // Set in the child's environment, replacing the values it would inherit.
  std::vector<std::pair<std::string, std::string>> env;
  int stderr_fd = -1; // the child's stderr; -1: /dev/null
  int report_fd = -1; // when >= 0, the child's descriptor 3 (a pipe it reports on)
};

// Forks a child that starts a new session, changes to "/", has stdin and stdout on /dev/null
// and executes /proc/self/exe with `argv` and our environment plus `env`. CTRL_EXEC_ROOT is
// passed on as an absolute path, since the child runs in "/". A child that cannot execute
// says "cannot re-execute /proc/self/exe" on its stderr and exits kExitExecFailed. Returns
// the child's pid, or "fork: <reason>".
Result<pid_t> spawn_detached(const DetachedChild& child);

} // namespace cx
