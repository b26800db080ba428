// Detached re-execution; see daemon.hpp.
#include "base/daemon.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/paths.hpp"

extern char** environ;

namespace cx {

namespace {

constexpr const char* kRootEnv = "CTRL_EXEC_ROOT";

// Our environment without the variables the child gets from `child.env` or a new root.
std::vector<std::string> child_environment(const DetachedChild& child) {
  std::vector<std::pair<std::string, std::string>> set;
  if (!paths::root().empty()) set.emplace_back(kRootEnv, absolute_path(paths::root()));
  set.insert(set.end(), child.env.begin(), child.env.end());
  auto replaced = [&](std::string_view entry) {
    if (entry.rfind(std::string(kRootEnv) + "=", 0) == 0) return true;
    for (const auto& [name, value] : child.env)
      if (entry.rfind(name + "=", 0) == 0) return true;
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (!replaced(*e)) env.emplace_back(*e);
  for (const auto& [name, value] : set)
    env.push_back(name + "=" + value);
  return env;
}

// In the child between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_detached(char* const* argv, char* const* envp, int stderr_fd,
                                int report_fd) {
  ::setsid();
  if (::chdir("/") != 0) ::_exit(kExitExecFailed);
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull < 0) ::_exit(kExitExecFailed);
  ::dup2(devnull, STDIN_FILENO);
  ::dup2(devnull, STDOUT_FILENO);
  ::dup2(stderr_fd >= 0 ? stderr_fd : devnull, STDERR_FILENO);
  if (report_fd == 3)
    ::fcntl(3, F_SETFD, 0); // dup2 onto itself would leave close-on-exec set
  else if (report_fd >= 0)
    ::dup2(report_fd, 3); // dup2 clears close-on-exec on the copy
  ::execve("/proc/self/exe", argv, envp);
  const char msg[] = "cannot re-execute /proc/self/exe\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(kExitExecFailed);
}

} // namespace

Result<pid_t> spawn_detached(const DetachedChild& child) {
  // Everything the child needs is prepared before fork().
  std::vector<std::string> argv_s = child.argv;
  std::vector<std::string> env_s = child_environment(child);
  std::vector<char*> argv, envp;
  for (auto& s : argv_s)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_s)
    envp.push_back(s.data());
  envp.push_back(nullptr);

  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return error("fork: " + errno_text(errno));
  if (pid == 0) exec_detached(argv.data(), envp.data(), child.stderr_fd, child.report_fd);
  return pid;
}

} // namespace cx
