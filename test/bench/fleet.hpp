// Shared by the dispatcher and API benchmarks: a throw-away CA, a dispatcher root and a fleet of
// real `ctrl-exec-agent serve` processes on loopback, each in its own CTRL_EXEC_ROOT with its own
// port, registered in the dispatcher's registry directly (no pairing), plus the small helpers
// the benchmarks print figures with. Every child is tracked and killed by PID on exit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

[[noreturn]] void die(const std::string& what);

// The program name for messages, and the safety net: after `seconds`, SIGALRM kills every
// tracked child and exits 3. Also ignores SIGPIPE and raises RLIMIT_NOFILE's soft limit to at
// least `want_fds` (up to the hard limit); returns the soft limit in force.
long init(const char* program, unsigned seconds, long want_fds);

// Children started by the benchmark; killed (SIGKILL) by die() and the safety net.
void track(pid_t pid);
void untrack(pid_t pid);
// SIGTERM to each tracked child, then SIGKILL to those still alive after `grace_ms`; reaps all.
void stop_all(int grace_ms = 5000);

double now_s();
double own_cpu_s();
// CPU time of `pid` (all threads) in seconds, from /proc/<pid>/task/*/sched, else from
// utime+stime in /proc/<pid>/stat; 0 when gone.
double proc_cpu_s(pid_t pid);
// A "<key>:   1234 kB" line of /proc/<pid>/status in kB, -1 when absent.
long proc_status_kb(pid_t pid, const std::string& key);
std::string mib(long kb);
// The host's CPU time so far (/proc/stat, all CPUs, in clock ticks): idle (with iowait), total.
struct HostCpu {
  long long idle = 0, total = 0;
};
HostCpu host_cpu();
// The idle share (0..1) of the host's CPUs between two readings.
double idle_share(const HostCpu& a, const HostCpu& b);
// snprintf into a std::string (up to 511 characters).
std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));
// The p-quantile (0..1) by nearest rank; 0 for no samples.
double percentile(std::vector<double> v, double p);
std::string read_all(const std::string& path);
void write(const std::string& path, const std::string& data, mode_t mode = 0644);
int count(const std::string& text, const std::string& needle);
// The same over a file of any size, read in chunks (the API's log grows to hundreds of MB).
int count_in_file(const std::string& path, const std::string& needle);
// A free TCP port on 127.0.0.1 (bound, read and closed: the usual small race).
int free_port();

// --- The fleet ------------------------------------------------------------------------------

struct Pki {
  std::string ca_key, ca_pem;
  std::string disp_crt, disp_key, disp_serial; // serial in the canonical lowercase hex
  std::string agent_key;                       // one key shared by every agent's cert
};

struct Agent {
  std::string name, root, log_path;
  pid_t pid = -1;
  int port = 0;
};

struct Fleet {
  std::string base;      // the temp dir holding everything
  std::string disp_root; // the dispatcher's (and the API's) CTRL_EXEC_ROOT
  Pki pki;
  std::vector<Agent> agents;
  double setup_s = 0, start_s = 0; // writing the files, starting the agents
};

// Makes the temp dir, the CA (10 years), the dispatcher cert and key, and the dispatcher root
// with ctrl-exec.conf (cert/key/ca, `extra_conf` appended). `tag` names the temp dir.
Fleet make_fleet(const std::string& tag, const std::string& extra_conf);
// Rewrites ctrl-exec.conf with another `extra_conf`.
void write_dispatcher_conf(const Fleet& fleet, const std::string& extra_conf);
// Adds `count` agents named a0001..: their files (a cert valid 10 years, so `ced ping` never
// renews it), the trusted map with the dispatcher's serial, and an allowlist with
// `true = /bin/true`; starts each with port 0, waits for its `ACTION=start PORT=` line, and
// writes its registry record (lookup_by ip, 127.0.0.1, that port). Dies if any fails to start
// within `deadline_s`.
void add_agents(Fleet& fleet, const std::string& binary, int count, double deadline_s = 180);
// Stops every child and removes the temp dir.
void teardown(Fleet& fleet);

// The environment for a process of the dispatcher side: ours without CTRL_EXEC_*, plus
// CTRL_EXEC_ROOT=<root> and CTRL_EXEC_LOG=stderr.
std::vector<std::string> child_env(const std::string& root);

// Starts `argv` with `env` (posix_spawn), stdin /dev/null, stdout and stderr to the files.
// When `die_with_us`, the child gets PR_SET_PDEATHSIG (fork+exec instead of posix_spawn).
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& out_path, const std::string& err_path, bool die_with_us);
// Waits for `pid` up to `timeout_ms`; returns the exit code (128+signal), or -1 after killing
// it on timeout. `cpu_s`, when given, receives the child's user+system CPU time.
int wait_exit(pid_t pid, int timeout_ms, double* cpu_s = nullptr);

} // namespace bench
