// Applying a script's profile to a process just before it execs the script (agent-and-wire
// §4.8), in the original's order: a private mount namespace; with `writable`, the whole file
// system read-only except those paths, and a private /tmp; the agent's own directories
// read-only and nosuid; the capability bounding set cut to `caps`; the switch to `run_as` with
// `caps` kept (permitted, effective, inheritable, ambient); then no_new_privileges.
//
// It runs in a process of its own: the executor spawns this binary in a hidden mode (the
// trampoline, kConfineMode) with the profile on its command line, and that process confines
// itself and execs the script. Nothing is done by halves: the first step that fails ends the
// process with 126 and one stderr line naming the step and the errno, before the script runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"

namespace cx::exec {

inline constexpr const char* kConfineMode = "__run-confined";

struct Confinement {
  std::optional<std::string> run_as; // a user name, or a uid (then gid = uid)
  std::vector<std::string> caps;     // CAP_* names kept
  std::vector<std::string> writable; // absolute paths left writable
  bool no_new_privileges = true;
  std::vector<std::string> protected_dirs; // made read-only and nosuid, whatever `writable` says
};

// The trampoline's arguments after the mode word: the confinement, "--", the script's path and
// its arguments.
std::vector<std::string> confine_args(const Confinement& c, const std::string& path,
                                      const std::vector<std::string>& args);

// The trampoline (`ctrl-exec-exec __run-confined ...`): parses the arguments, confines this
// process, checks that the script can be executed as run_as, and execs it with this
// process's environment. Returns only on failure: 126 (bad arguments, a confinement step,
// not executable by run_as) or 127 (execve failed), after one "executor: ..." line on stderr.
int run_confined(int argc, char** argv);

// Tries, once, in a forked child, what every run will need: a private mount namespace, the
// protected directories read-only, and dropping a capability from the bounding set. Returns
// the first step that fails ("unshare(CLONE_NEWNS) failed: Operation not permitted"), so that
// `serve` can refuse to start where no script could run (a container without CAP_SYS_ADMIN,
// or with a seccomp or AppArmor profile that denies mount) instead of failing every run.
Status probe_confinement(const std::vector<std::string>& protected_dirs);

// What run_as names, resolved without NSS (the binary is static): a name through /etc/passwd,
// with its supplementary groups from /etc/group; digits as uid = gid, with no supplementary
// groups. Errors: "unknown run_as user '<name>'", "run_as uid '<n>' is out of range".
struct Identity {
  uid_t uid;
  gid_t gid;
  std::vector<gid_t> groups;
};
Result<Identity> resolve_run_as(const std::string& run_as);

} // namespace cx::exec
