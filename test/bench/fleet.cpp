// The benchmarks' fleet of real agents and their helpers; see fleet.hpp.
#include "fleet.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/files.hpp"
#include "base/time.hpp"
#include "pki/ca.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "state/registry.hpp"

extern char** environ;

namespace bench {
namespace {

const char* g_program = "bench";
std::string g_base; // removed by die()

// Tracked children, readable from the SIGALRM handler: a fixed array, 0 for a free slot.
constexpr int kMaxChildren = 8192;
volatile pid_t g_children[kMaxChildren];
volatile int g_child_count = 0;

void kill_tracked() {
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] > 0) kill(g_children[i], SIGKILL);
}

template <typename T> T must(cx::Result<T> r, const char* what) {
  if (!r.ok()) die(std::string(what) + ": " + r.message());
  return std::move(*r);
}

void must(cx::Status st, const char* what) {
  if (!st.ok()) die(std::string(what) + ": " + st.message());
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string agent_conf(const std::string& etc) {
  return "port = 0\ncert = " + etc + "/agent.crt\nkey = " + etc + "/agent.key\nca = " + etc +
         "/ca.crt\n\n[profile default]\nrun_as = nobody\n";
}

} // namespace

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", g_program, what.c_str());
  kill_tracked();
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] > 0) waitpid(g_children[i], nullptr, 0);
  if (!g_base.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(g_base, ec);
  }
  std::exit(1);
}

long init(const char* program, unsigned seconds, long want_fds) {
  g_program = program;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, [](int) {
    kill_tracked();
    const char msg[] = "bench: the overall deadline passed; children killed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(3);
  });
  alarm(seconds);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && static_cast<long>(rl.rlim_cur) < want_fds) {
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || static_cast<long>(rl.rlim_max) > want_fds)
                      ? static_cast<rlim_t>(want_fds)
                      : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(rl.rlim_cur);
}

void track(pid_t pid) {
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] == 0) {
      g_children[i] = pid;
      return;
    }
  if (g_child_count == kMaxChildren) die("too many children");
  g_children[g_child_count] = pid;
  g_child_count = g_child_count + 1;
}

void untrack(pid_t pid) {
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] == pid) g_children[i] = 0;
}

void stop_all(int grace_ms) {
  std::vector<pid_t> live;
  for (int i = 0; i < g_child_count; ++i)
    if (pid_t p = g_children[i]; p > 0) live.push_back(p);
  for (pid_t p : live)
    kill(p, SIGTERM);
  double deadline = now_s() + grace_ms / 1000.0;
  while (!live.empty() && now_s() < deadline) {
    std::erase_if(live, [](pid_t p) {
      int status = 0;
      if (waitpid(p, &status, WNOHANG) != p) return false;
      untrack(p);
      return true;
    });
    if (!live.empty()) usleep(10000);
  }
  for (pid_t p : live) {
    kill(p, SIGKILL);
    waitpid(p, nullptr, 0);
    untrack(p);
  }
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double own_cpu_s() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double proc_cpu_s(pid_t pid) {
  // se.sum_exec_runtime of each thread (/proc/<pid>/task/<tid>/sched, in ms) is exact; utime
  // and stime in /proc/<pid>/stat are sampled in 10 ms ticks, far too coarse for an agent that
  // spends a few ms on one request.
  double ms = 0;
  bool found = false;
  std::error_code ec;
  for (const auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "sched");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("se.sum_exec_runtime", 0) == 0) {
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          ms += std::strtod(line.c_str() + colon + 1, nullptr);
          found = true;
        }
        break;
      }
  }
  if (found) return ms / 1000;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t paren = all.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(all.substr(paren + 1));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long proc_status_kb(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0)
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  return -1;
}

std::string strf(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

HostCpu host_cpu() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  long long v[10] = {};
  f >> cpu;
  for (auto& x : v)
    f >> x;
  HostCpu h;
  h.idle = v[3] + v[4];
  for (int i = 0; i < 8; ++i) // guest time is already counted in user time
    h.total += v[i];
  return h;
}

double idle_share(const HostCpu& a, const HostCpu& b) {
  long long total = b.total - a.total;
  return total > 0 ? static_cast<double>(b.idle - a.idle) / static_cast<double>(total) : 0;
}

std::string mib(long kb) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB (%ld kB)", static_cast<double>(kb) / 1024, kb);
  return buf;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

std::string read_all(const std::string& path) {
  auto r = cx::read_file(path);
  return r.ok() ? *r : std::string();
}

void write(const std::string& path, const std::string& data, mode_t mode) {
  must(cx::make_dirs(cx::dirname(path), 0755), "mkdir");
  must(cx::write_file_atomic(path, data, cx::WriteOptions{.mode = mode, .fsync = false}), "write");
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

int count_in_file(const std::string& path, const std::string& needle) {
  std::ifstream f(path, std::ios::binary);
  std::string carry, chunk(1 << 20, '\0');
  int n = 0;
  while (f.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || f.gcount() > 0) {
    std::string text = carry + chunk.substr(0, static_cast<size_t>(f.gcount()));
    n += count(text, needle);
    // Keep a tail shorter than the needle, so a match across chunks is found once.
    size_t keep = std::min(text.size(), needle.size() - 1);
    carry = text.substr(text.size() - keep);
  }
  return n;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    die("cannot find a free port");
  close(fd);
  return ntohs(a.sin_port);
}

// --- The fleet ------------------------------------------------------------------------------

void write_dispatcher_conf(const Fleet& fleet, const std::string& extra_conf) {
  const std::string etc = fleet.disp_root + "/etc/ctrl-exec";
  write(etc + "/ctrl-exec.conf", "cert = " + etc + "/dispatcher.crt\nkey = " + etc +
                                     "/dispatcher.key\nca = " + etc +
                                     "/ca.crt\ndispatcher_id = bench-dispatcher\n" + extra_conf);
}

Fleet make_fleet(const std::string& tag, const std::string& extra_conf) {
  double t0 = now_s();
  std::string tmpl = "/tmp/cx-" + tag + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) die("mkdtemp failed");
  Fleet f;
  f.base = g_base = tmpl;
  f.disp_root = f.base + "/dispatcher";
  Pki& p = f.pki;
  p.ca_key = must(cx::pki::generate_key(), "CA key");
  p.ca_pem = must(cx::pki::create_ca_cert(p.ca_key, cx::pki::CaOptions{.cn = "bench CA"}), "CA");
  p.disp_key = must(cx::pki::generate_key(), "dispatcher key");
  p.disp_serial = "7f3a9c";
  p.disp_crt =
      must(cx::pki::sign_csr(must(cx::pki::create_csr(p.disp_key, "ctrl-exec-dispatcher"), "CSR"),
                             p.ca_pem, p.ca_key,
                             cx::pki::IssueOptions{.serial = p.disp_serial, .days = 3650}),
           "sign");
  p.agent_key = must(cx::pki::generate_key(), "agent key");
  const std::string etc = f.disp_root + "/etc/ctrl-exec";
  write(etc + "/dispatcher.crt", p.disp_crt, 0644);
  write(etc + "/dispatcher.key", p.disp_key, 0600);
  write(etc + "/ca.crt", p.ca_pem, 0644);
  write(etc + "/ca.key", p.ca_key, 0600);
  write_dispatcher_conf(f, extra_conf);
  must(cx::make_dirs(f.disp_root + "/var/lib/ctrl-exec/agents", 0755), "mkdir");
  f.setup_s = now_s() - t0;
  return f;
}

void add_agents(Fleet& f, const std::string& binary, int count, double deadline_s) {
  double t0 = now_s();
  const size_t first = f.agents.size();
  for (int i = 0; i < count; ++i) {
    Agent a;
    const size_t n = first + static_cast<size_t>(i) + 1;
    a.name = strf("a%04zu", n);
    a.root = f.base + "/agents/" + a.name;
    a.log_path = a.root + "/agent.log";
    const std::string etc = a.root + "/etc/ctrl-exec-agent";
    // One key for every agent keeps the setup quick; each still has its own cert and serial,
    // and its own session ticket key, so nothing is shared on the wire.
    std::string csr = must(cx::pki::create_csr(f.pki.agent_key, a.name), "CSR");
    std::string crt = must(
        cx::pki::sign_csr(csr, f.pki.ca_pem, f.pki.ca_key,
                          cx::pki::IssueOptions{.serial = strf("%zx", 0x100000 + n), .days = 3650}),
        "sign");
    write(etc + "/agent.crt", crt, 0640);
    write(etc + "/agent.key", f.pki.agent_key, 0640);
    write(etc + "/ca.crt", f.pki.ca_pem, 0644);
    write(etc + "/agent.conf", agent_conf(etc));
    write(etc + "/scripts.conf", "true = /bin/true\n");
    write(a.root + "/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers",
          f.pki.disp_serial + " bench-dispatcher\n");
    f.agents.push_back(std::move(a));
  }
  f.setup_s += now_s() - t0;

  t0 = now_s();
  for (size_t i = first; i < f.agents.size(); ++i) {
    Agent& a = f.agents[i];
    auto env = child_env(a.root);
    a.pid = spawn({binary, "ctrl-exec-agent", "serve"}, env, "/dev/null", a.log_path, true);
  }
  // Wait for every start line, with a deadline.
  std::vector<size_t> pending;
  for (size_t i = first; i < f.agents.size(); ++i)
    pending.push_back(i);
  const double deadline = now_s() + deadline_s;
  while (!pending.empty()) {
    std::erase_if(pending, [&](size_t i) {
      Agent& a = f.agents[i];
      std::string log = read_all(a.log_path);
      size_t at = log.find("ACTION=start PORT=");
      if (at != std::string::npos && (a.port = std::atoi(log.c_str() + at + 18)) > 0) return true;
      int status = 0;
      if (waitpid(a.pid, &status, WNOHANG) == a.pid) {
        untrack(a.pid);
        die("agent " + a.name + " exited during start:\n" + log);
      }
      return false;
    });
    if (pending.empty()) break;
    if (now_s() > deadline)
      die(std::to_string(pending.size()) + " agents did not log ACTION=start in time, e.g. " +
          f.agents[pending.front()].name + ":\n" + read_all(f.agents[pending.front()].log_path));
    usleep(20000);
  }
  f.start_s += now_s() - t0;

  cx::state::Registry registry(f.disp_root + "/var/lib/ctrl-exec/agents");
  auto info =
      must(cx::pki::cert_info(read_all(f.agents[first].root + "/etc/ctrl-exec-agent/agent.crt")),
           "cert info");
  for (size_t i = first; i < f.agents.size(); ++i) {
    const Agent& a = f.agents[i];
    cx::state::AgentRecord rec;
    rec.hostname = a.name;
    rec.ip = "127.0.0.1";
    rec.lookup_by = "ip";
    rec.port = a.port;
    rec.paired = cx::iso8601_utc(cx::unix_now());
    rec.expiry = cx::openssl_time(info.not_after);
    rec.reqid = strf("bench%06zu", i);
    rec.dispatcher_serial = f.pki.disp_serial;
    rec.serial_status = "current";
    must(registry.register_agent(rec), "register");
  }
}

void teardown(Fleet& f) {
  stop_all();
  std::error_code ec;
  std::filesystem::remove_all(f.base, ec);
  g_base.clear();
}

std::vector<std::string> child_env(const std::string& root) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "CTRL_EXEC_", 10) != 0) env.emplace_back(*e);
  env.push_back("CTRL_EXEC_ROOT=" + root);
  env.push_back("CTRL_EXEC_LOG=stderr");
  return env;
}

pid_t spawn(const std::vector<std::string>& argv_in, const std::vector<std::string>& env_in,
            const std::string& out_path, const std::string& err_path, bool die_with_us) {
  std::vector<std::string> argv_s = argv_in, env_s = env_in;
  auto argv = c_strings(argv_s);
  auto envp = c_strings(env_s);
  pid_t pid = -1;
  if (!die_with_us) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) die("posix_spawn " + argv_s[0] + ": " + std::strerror(rc));
    track(pid);
    return pid;
  }
  // fork+exec, so that the child can ask to die with us; it only makes system calls.
  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) die("cannot open a child's stdio files");
  pid_t parent = getpid();
  pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in_fd);
  close(out_fd);
  close(err_fd);
  track(pid);
  return pid;
}

int wait_exit(pid_t pid, int timeout_ms, double* cpu_s) {
  int status = 0;
  // The syscall directly: glibc 2.36's <sys/pidfd.h> lacks extern "C".
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    pollfd p{fd, POLLIN, 0};
    int rc;
    do
      rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    close(fd);
    if (rc == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      untrack(pid);
      return -1;
    }
  }
  // The child has exited (or pidfd_open is unavailable and the SIGALRM net bounds this wait).
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid) die("waitpid failed");
  untrack(pid);
  if (cpu_s)
    *cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

} // namespace bench
