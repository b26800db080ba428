// Tests for src/base/daemon.cpp. /proc/self/exe is this test binary, so the detached child is
// the hidden test case below, selected by name: it reports what it was started with.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "base/daemon.hpp"
#include "base/files.hpp"
#include "base/paths.hpp"

extern char** environ;

using namespace cx;

namespace {

constexpr const char* kChildTest = "spawn_detached child report";

std::string read_to_end(int fd) {
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

bool is_dev_null(int fd) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode) &&
         a.st_rdev == b.st_rdev;
}

std::string env_entries(const char* name) {
  std::string out, prefix = std::string(name) + "=";
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) == 0) out += std::string(*e) + ";";
  return out.empty() ? "-" : out;
}

} // namespace

// Runs only in the child that the next test starts; it writes its report to descriptor 3.
TEST_CASE("spawn_detached child report", "[.]") {
  char cwd[4096];
  std::string report = "cwd=" + std::string(::getcwd(cwd, sizeof cwd) ? cwd : "?") + "\n";
  report += std::string("leader=") + (::getsid(0) == ::getpid() ? "yes" : "no") + "\n";
  report += std::string("stdin=") + (is_dev_null(0) ? "null" : "other") + "\n";
  report += std::string("stdout=") + (is_dev_null(1) ? "null" : "other") + "\n";
  report += "root=" + env_entries("CTRL_EXEC_ROOT") + "\n";
  report += "extra=" + env_entries("CX_DAEMON_TEST_EXTRA") + "\n";
  (void)!::write(3, report.data(), report.size());
  (void)!::write(2, "to stderr\n", 10);
}

TEST_CASE("spawn_detached re-executes this binary in a new session in /", "[base]") {
  const std::string root = paths::root(); // read once per process: pinned before setenv
  ::setenv("CX_DAEMON_TEST_EXTRA", "inherited", 1);
  ::setenv("CTRL_EXEC_ROOT", "relative/root", 1);
  int report[2], err[2];
  REQUIRE(::pipe2(report, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  DetachedChild c;
  c.argv = {"unit-tests", kChildTest};
  c.env = {{"CX_DAEMON_TEST_EXTRA", "replaced"}};
  c.stderr_fd = err[1];
  c.report_fd = report[1];
  auto pid = spawn_detached(c);
  ::unsetenv("CX_DAEMON_TEST_EXTRA");
  if (root.empty())
    ::unsetenv("CTRL_EXEC_ROOT");
  else
    ::setenv("CTRL_EXEC_ROOT", root.c_str(), 1);
  REQUIRE(pid.ok());
  ::close(report[1]);
  ::close(err[1]);
  std::string got = read_to_end(report[0]);
  std::string stderr_text = read_to_end(err[0]);
  int status = 0;
  REQUIRE(::waitpid(*pid, &status, 0) == *pid);
  CHECK(WIFEXITED(status));
  CHECK(got == "cwd=/\nleader=yes\nstdin=null\nstdout=null\n"
               "root=" +
                   (root.empty() ? "-" : "CTRL_EXEC_ROOT=" + absolute_path(root) + ";") +
                   "\n"
                   "extra=CX_DAEMON_TEST_EXTRA=replaced;\n");
  CHECK(stderr_text.find("to stderr\n") != std::string::npos);
}
