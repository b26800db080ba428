// The confinement trampoline; see confine.hpp. Raw syscalls only (no libcap): unshare, mount,
// mount_setattr, prctl, capset, setgroups, setgid, setuid.
#include "exec/confine.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "exec/caps.hpp"

extern char** environ;

namespace cx::exec {

namespace {

constexpr std::string_view kRunAs = "--run-as=";
constexpr std::string_view kCap = "--cap=";
constexpr std::string_view kWritable = "--writable=";
constexpr std::string_view kProtect = "--protect=";
constexpr std::string_view kNnp = "--nnp=";

// "<step> failed: <strerror(errno)>", with errno read now.
Status step_failed(const std::string& step) {
  return Status::error(step + " failed: " + errno_text(errno));
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The supplementary groups that list `name` as a member in /etc/group, plus `primary`.
std::vector<gid_t> groups_of(const std::string& name, gid_t primary) {
  std::vector<gid_t> out{primary};
  auto text = read_file("/etc/group", 16u << 20);
  if (!text.ok()) return out;
  for (const auto& line : split(*text, '\n')) {
    auto f = split(line, ':');
    if (f.size() < 4) continue;
    auto gid = parse_uint(f[2]);
    if (!gid || *gid > 0xFFFFFFFEu) continue;
    for (const auto& member : split(f[3], ',')) {
      if (trim(member) == name && static_cast<gid_t>(*gid) != primary) {
        out.push_back(static_cast<gid_t>(*gid));
        break;
      }
    }
  }
  return out;
}

int mount_attr(const std::string& path, uint64_t set, uint64_t clear) {
  struct mount_attr attr {};
  attr.attr_set = set;
  attr.attr_clr = clear;
  return static_cast<int>(
      ::syscall(SYS_mount_setattr, AT_FDCWD, path.c_str(), AT_RECURSIVE, &attr, sizeof attr));
}

// One line of /proc/self/mountinfo: where a mount is, and whether it is read-only.
struct MountPoint {
  std::string path;
  bool read_only = false;
};

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mount_path(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<std::vector<MountPoint>> read_mounts() {
  auto text = read_file("/proc/self/mountinfo", 16u << 20);
  if (!text.ok()) return Status::error("reading /proc/self/mountinfo failed: " + text.message());
  std::vector<MountPoint> out;
  for (const auto& line : split(*text, '\n')) {
    auto f = split(line, ' ');
    if (f.size() < 6) continue;
    MountPoint m;
    m.path = unescape_mount_path(f[4]);
    for (const auto& opt : split(f[5], ','))
      if (opt == "ro") m.read_only = true;
    out.push_back(std::move(m));
  }
  return out;
}

bool at_or_under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

int mount_attr_one(const std::string& path, uint64_t set) {
  struct mount_attr attr {};
  attr.attr_set = set;
  return static_cast<int>(
      ::syscall(SYS_mount_setattr, AT_FDCWD, path.c_str(), 0, &attr, sizeof attr));
}

// Step 1-4: the mount namespace.
Status confine_mounts(const Confinement& c) {
  if (::unshare(CLONE_NEWNS) != 0) return step_failed("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return step_failed("making / recursively private");
  if (!c.writable.empty()) {
    // What was read-only before stays read-only: `writable` opens nothing that was closed.
    auto mounts = read_mounts();
    if (!mounts.ok()) return mounts.status();
    struct Writable {
      std::string path; // real path
      bool was_read_only = false;
    };
    std::vector<Writable> open;
    for (const auto& w : c.writable) {
      char real[PATH_MAX];
      if (!::realpath(w.c_str(), real)) return step_failed("writable path '" + w + "'");
      struct statvfs vfs {};
      if (::statvfs(real, &vfs) != 0) return step_failed("statvfs('" + w + "')");
      open.push_back({real, (vfs.f_flag & ST_RDONLY) != 0});
    }
    // Each writable path becomes a mount of its own, so that it can be left writable when
    // everything else is made read-only.
    for (const auto& w : open)
      if (::mount(w.path.c_str(), w.path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        return step_failed("bind-mounting writable path '" + w.path + "'");
    if (mount_attr("/", MOUNT_ATTR_RDONLY, 0) != 0) {
      if (errno == ENOSYS)
        return Status::error("making the file system read-only for writable= needs Linux 5.12 "
                             "or later (mount_setattr): " +
                             errno_text(ENOSYS));
      return step_failed("mount_setattr(/, read-only)");
    }
    for (const auto& w : open) {
      if (w.was_read_only) continue;
      if (mount_attr(w.path, 0, MOUNT_ATTR_RDONLY) != 0)
        return step_failed("mount_setattr('" + w.path + "', writable)");
      for (const auto& m : *mounts)
        if (m.read_only && m.path != w.path && at_or_under(m.path, w.path) &&
            mount_attr_one(m.path, MOUNT_ATTR_RDONLY) != 0)
          return step_failed("mount_setattr('" + m.path + "', read-only again)");
    }
    if (::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
      return step_failed("mounting a private /tmp");
  }
  // Last, so that no writable path can reopen them.
  for (const auto& d : c.protected_dirs) {
    if (!is_directory(d)) continue;
    if (::mount(d.c_str(), d.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      return step_failed("bind-mounting '" + d + "'");
    if (mount_attr(d, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0) == 0) continue;
    if (errno != ENOSYS) return step_failed("mount_setattr('" + d + "', read-only)");
    // Before Linux 5.12: the bind mount itself (there are no writable mounts under it, since
    // writable= needs mount_setattr).
    if (::mount(nullptr, d.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID,
                nullptr) != 0)
      return step_failed("remounting '" + d + "' read-only");
  }
  return {};
}

Status confine_identity(const Confinement& c, const std::vector<int>& keep,
                        const std::optional<Identity>& id) {
  int last = kernel_last_capability();
  for (int n = 0; n <= last; ++n) {
    bool kept = false;
    for (int k : keep)
      kept = kept || k == n;
    if (!kept && ::prctl(PR_CAPBSET_DROP, n, 0, 0, 0) != 0) {
      std::string name(capability_name(n));
      return step_failed("dropping " + (name.empty() ? std::to_string(n) : name) +
                         " from the bounding set");
    }
  }
  if (id) {
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return step_failed("prctl(PR_SET_KEEPCAPS)");
    if (::setgroups(id->groups.size(), id->groups.data()) != 0) return step_failed("setgroups");
    if (::setgid(id->gid) != 0) return step_failed("setgid(" + std::to_string(id->gid) + ")");
    if (::setuid(id->uid) != 0) return step_failed("setuid(" + std::to_string(id->uid) + ")");
  }
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int k : keep) {
    auto bit = 1u << (k % 32);
    data[k / 32].permitted |= bit;
    data[k / 32].effective |= bit;
    data[k / 32].inheritable |= bit;
  }
  if (::syscall(SYS_capset, &hdr, data) != 0) return step_failed("capset");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
    return step_failed("clearing the ambient capabilities");
  for (int k : keep)
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, k, 0, 0) != 0)
      return step_failed("raising " + std::string(capability_name(k)) + " in the ambient set");
  if (c.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return step_failed("prctl(PR_SET_NO_NEW_PRIVS)");
  return {};
}

int fail(const std::string& message, int code = 126) {
  std::string line = "executor: " + message + "\n";
  (void)!::write(2, line.data(), line.size());
  return code;
}

} // namespace

Result<Identity> resolve_run_as(const std::string& run_as) {
  if (is_digits(run_as)) {
    auto n = parse_uint(run_as);
    // (uid_t)-1 means "no change" to setuid(2): never a user.
    if (!n || *n >= 0xFFFFFFFFu)
      return Status::error("run_as uid '" + run_as + "' is out of range");
    auto v = static_cast<uid_t>(*n);
    return Identity{v, static_cast<gid_t>(v), {static_cast<gid_t>(v)}};
  }
  auto text = read_file("/etc/passwd", 16u << 20);
  if (text.ok()) {
    for (const auto& line : split(*text, '\n')) {
      auto f = split(line, ':');
      if (f.size() < 4 || f[0] != run_as) continue;
      auto uid = parse_uint(f[2]), gid = parse_uint(f[3]);
      if (!uid || !gid || *uid >= 0xFFFFFFFFu || *gid >= 0xFFFFFFFFu) break;
      auto g = static_cast<gid_t>(*gid);
      return Identity{static_cast<uid_t>(*uid), g, groups_of(run_as, g)};
    }
  }
  return Status::error("unknown run_as user '" + run_as + "'");
}

Status probe_confinement(const std::vector<std::string>& protected_dirs) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return step_failed("pipe");
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    errno = e;
    return step_failed("fork");
  }
  if (pid == 0) {
    ::close(fds[0]);
    Confinement c;
    c.protected_dirs = protected_dirs;
    Status st = confine_mounts(c);
    if (st.ok() && ::prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) != 0)
      st = step_failed("dropping CAP_SYS_BOOT from the bounding set");
    if (!st.ok()) (void)!::write(fds[1], st.message().data(), st.message().size());
    ::_exit(st.ok() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string why;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      why.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return Status::error(why.empty() ? "the probe child failed" : why);
}

std::vector<std::string> confine_args(const Confinement& c, const std::string& path,
                                      const std::vector<std::string>& args) {
  std::vector<std::string> out;
  if (c.run_as) out.push_back(std::string(kRunAs) + *c.run_as);
  for (const auto& cap : c.caps)
    out.push_back(std::string(kCap) + cap);
  for (const auto& w : c.writable)
    out.push_back(std::string(kWritable) + w);
  for (const auto& d : c.protected_dirs)
    out.push_back(std::string(kProtect) + d);
  out.push_back(std::string(kNnp) + (c.no_new_privileges ? "1" : "0"));
  out.push_back("--");
  out.push_back(path);
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

int run_confined(int argc, char** argv) {
  // argv[0] is the applet, argv[1] the mode word.
  Confinement c;
  bool nnp_seen = false;
  int i = 2;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (starts_with(a, kRunAs))
      c.run_as = std::string(a.substr(kRunAs.size()));
    else if (starts_with(a, kCap))
      c.caps.emplace_back(a.substr(kCap.size()));
    else if (starts_with(a, kWritable))
      c.writable.emplace_back(a.substr(kWritable.size()));
    else if (starts_with(a, kProtect))
      c.protected_dirs.emplace_back(a.substr(kProtect.size()));
    else if (a == "--nnp=1" || a == "--nnp=0") {
      c.no_new_privileges = a == "--nnp=1";
      nnp_seen = true;
    } else {
      return fail("internal error: unknown confinement argument '" + std::string(a) + "'");
    }
  }
  // Everything must be said: a missing part would run the script with less restriction.
  if (i + 1 >= argc || !nnp_seen) return fail("internal error: incomplete confinement arguments");
  const char* path = argv[i + 1];
  char** script_argv = argv + i + 1;

  // Resolve every name before changing anything.
  std::vector<int> keep;
  for (const auto& name : c.caps) {
    auto n = capability_number(name);
    if (!n) return fail("unknown capability '" + name + "'");
    if (*n > kernel_last_capability())
      return fail("capability '" + name + "' is not known to this kernel");
    keep.push_back(*n);
  }
  std::optional<Identity> id;
  if (c.run_as) {
    auto r = resolve_run_as(*c.run_as);
    if (!r.ok()) return fail(r.message());
    id = *r;
  }
  if (auto st = confine_mounts(c); !st.ok()) return fail(st.message());
  if (auto st = confine_identity(c, keep, id); !st.ok()) return fail(st.message());
  if (::access(path, X_OK) != 0) {
    int e = errno;
    std::string who = c.run_as ? *c.run_as : "root";
    return fail("'" + std::string(path) + "' is not executable by the profile's run_as user (" +
                who + "): " + errno_text(e));
  }
  ::execve(path, script_argv, environ);
  int e = errno;
  return fail("exec '" + std::string(path) + "' failed: " + errno_text(e), 127);
}

} // namespace cx::exec
