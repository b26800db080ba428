// Benchmark: the dispatcher CLI as an operator runs it. Spawns the real `ctrl-exec ced ping` and
// `ced run` processes against real agents (`ctrl-exec-agent serve`, one process and one temp
// root per agent, on loopback) and prints their wall times, cold (the CLI's TLS session cache
// deleted first, so every connection is a full handshake) and warm (sessions resumed from the
// cache the previous run wrote), for one agent and for fan-outs to 100, 500 and 1,000 agents,
// at max_parallel 64 and at a higher value. Figures are printed next to issue 5's targets;
// nothing is asserted.
//
// Usage: dispatcher-bench path/to/ctrl-exec [runs=30] [agents=1000] [fanout_runs=3]
//                         [high_parallel=256]
//   runs:          `ced ping` / `ced run` processes per single-agent figure
//   agents:        agents started (the largest fan-out; at least 1)
//   fanout_runs:   cold+warm pairs per fan-out figure
//   high_parallel: the second max_parallel tried for fan-outs (0: skip)
//
// One `ced run` takes at most 500 hosts (dispatcher-and-api §5.3, not configurable), so the
// 1,000-agent fan-out is two `ced run` processes of 500 started together; its wall time runs
// from the first start to the last exit.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fleet.hpp"
#include "json/json.hpp"

using namespace bench;

namespace {

constexpr int kCliTimeoutMs = 120000; // one CLI process; a cold 1,000-agent run takes seconds
constexpr size_t kMaxHostsPerRun = 500;

struct Bench {
  std::string binary;
  Fleet fleet;
  std::string cache_path; // the CLI's TLS session cache
  std::string out_dir;    // CLI stdout/stderr files
};

enum class Kind { ping, run, none };

struct CliOutcome {
  double wall_ms = 0, cpu_ms = 0; // cpu: the sum over the processes
  int good = 0, expected = 0;     // hosts answering ok (ping) / exit 0 (run)
  int full = 0, resumed = 0;      // TLS=full / TLS=resumed in the CLI's log lines
  bool failed = false;            // a process exited non-zero, timed out, or a host failed
  std::string first_error;
};

// Hosts that answered well in a `--json` result document.
int good_results(const std::string& out, Kind kind) {
  auto doc = cx::json::parse(out);
  if (!doc.ok() || !doc->IsObject()) return 0;
  const cx::json::Value* results = cx::json::find(*doc, "results");
  if (!results || !results->IsArray()) return 0;
  int n = 0;
  for (const auto& r : results->GetArray()) {
    if (!r.IsObject()) continue;
    if (kind == Kind::ping) {
      const cx::json::Value* s = cx::json::find(r, "status");
      if (s && s->IsString() && std::string(s->GetString()) == "ok") ++n;
    } else {
      const cx::json::Value* e = cx::json::find(r, "exit");
      if (e && e->IsInt() && e->GetInt() == 0) ++n;
    }
  }
  return n;
}

// Starts one CLI process per argument list at once and waits for all of them; the wall time
// runs from the first start to the last exit.
CliOutcome run_cli(Bench& b, const std::vector<std::vector<std::string>>& arg_lists, Kind kind,
                   int expected) {
  static const std::vector<std::string> env = child_env(b.fleet.disp_root);
  CliOutcome o;
  o.expected = expected;
  std::vector<pid_t> pids;
  std::vector<std::string> outs, errs;
  for (size_t i = 0; i < arg_lists.size(); ++i) {
    outs.push_back(b.out_dir + "/out" + std::to_string(i));
    errs.push_back(b.out_dir + "/err" + std::to_string(i));
  }
  double t0 = now_s();
  for (size_t i = 0; i < arg_lists.size(); ++i) {
    std::vector<std::string> argv{b.binary};
    argv.insert(argv.end(), arg_lists[i].begin(), arg_lists[i].end());
    pids.push_back(spawn(argv, env, outs[i], errs[i], false));
  }
  std::vector<int> rcs;
  for (pid_t p : pids) {
    double cpu = 0;
    rcs.push_back(wait_exit(p, kCliTimeoutMs, &cpu));
    o.cpu_ms += cpu * 1000;
  }
  o.wall_ms = (now_s() - t0) * 1000;
  for (size_t i = 0; i < pids.size(); ++i) {
    std::string out = read_all(outs[i]), err = read_all(errs[i]);
    if (kind != Kind::none) o.good += good_results(out, kind);
    o.full += count(err, "TLS=full");
    o.resumed += count(err, "TLS=resumed");
    if (rcs[i] != 0 && o.first_error.empty())
      o.first_error =
          "exit " + std::to_string(rcs[i]) + ": " + out.substr(0, 300) + err.substr(0, 600);
  }
  if (kind != Kind::none && o.good != expected && o.first_error.empty())
    o.first_error = std::to_string(expected - o.good) +
                    " hosts did not answer well: " + read_all(outs[0]).substr(0, 600);
  o.failed = !o.first_error.empty();
  return o;
}

void forget_sessions(const Bench& b) {
  unlink(b.cache_path.c_str());
}

std::vector<std::string> host_names(const Bench& b, size_t from, size_t n) {
  std::vector<std::string> out;
  for (size_t i = from; i < from + n && i < b.fleet.agents.size(); ++i)
    out.push_back(b.fleet.agents[i].name);
  return out;
}

// `ced run <hosts> true --json`, one process per 500 hosts.
std::vector<std::vector<std::string>> run_arg_lists(const Bench& b, size_t hosts) {
  std::vector<std::vector<std::string>> lists;
  for (size_t from = 0; from < hosts; from += kMaxHostsPerRun) {
    std::vector<std::string> args{"ced", "run"};
    for (auto& h : host_names(b, from, std::min(kMaxHostsPerRun, hosts - from)))
      args.push_back(h);
    args.push_back("true");
    args.push_back("--json");
    lists.push_back(std::move(args));
  }
  return lists;
}

double agents_cpu_s(const Bench& b, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n && i < b.fleet.agents.size(); ++i)
    sum += proc_cpu_s(b.fleet.agents[i].pid);
  return sum;
}

struct Series {
  std::vector<double> wall_ms, cpu_ms;
  int runs = 0, failed = 0, full = 0, resumed = 0;
  std::string first_error;
  void add(const CliOutcome& o) {
    ++runs;
    wall_ms.push_back(o.wall_ms);
    cpu_ms.push_back(o.cpu_ms);
    full += o.full;
    resumed += o.resumed;
    if (o.failed) {
      ++failed;
      if (first_error.empty()) first_error = o.first_error;
    }
  }
};

void print_single(const char* name, const Series& s, const char* target) {
  std::printf("%-22s median %6.2f ms  p95 %6.2f ms  min %6.2f  max %6.2f  CLI CPU median %5.2f ms"
              "  %s\n",
              name, percentile(s.wall_ms, 0.5), percentile(s.wall_ms, 0.95),
              percentile(s.wall_ms, 0), percentile(s.wall_ms, 1), percentile(s.cpu_ms, 0.5),
              target);
  std::printf("%-22s %d runs, %d failed, TLS handshakes: %d full, %d resumed\n", "", s.runs,
              s.failed, s.full, s.resumed);
  if (!s.first_error.empty()) std::printf("%-22s first failure: %s\n", "", s.first_error.c_str());
}

// `runs` cold and `runs` warm processes of `args` to one agent.
void single_agent(Bench& b, const char* what, const std::vector<std::string>& args, Kind kind,
                  int runs) {
  Series cold, warm;
  for (int i = 0; i < runs; ++i) {
    forget_sessions(b);
    cold.add(run_cli(b, {args}, kind, 1));
  }
  run_cli(b, {args}, kind, 1); // the cache now holds a session from a warm run
  for (int i = 0; i < runs; ++i)
    warm.add(run_cli(b, {args}, kind, 1));
  std::string c = std::string(what) + " cold", w = std::string(what) + " warm";
  print_single(c.c_str(), cold, kind == Kind::ping ? "[target <= 20 ms]" : "");
  print_single(w.c_str(), warm, kind == Kind::ping ? "[target <= 5 ms]" : "");
}

void fan_out(Bench& b, size_t hosts, int reps, long max_parallel) {
  Series cold, warm;
  double agent_cold_s = 0, agent_warm_s = 0, idle_cold = 0, idle_warm = 0;
  auto lists = run_arg_lists(b, hosts);
  for (int i = 0; i < reps; ++i) {
    forget_sessions(b);
    double a0 = agents_cpu_s(b, hosts);
    HostCpu h0 = host_cpu();
    cold.add(run_cli(b, lists, Kind::run, static_cast<int>(hosts)));
    HostCpu h1 = host_cpu();
    double a1 = agents_cpu_s(b, hosts);
    warm.add(run_cli(b, lists, Kind::run, static_cast<int>(hosts)));
    idle_warm += idle_share(h1, host_cpu());
    idle_cold += idle_share(h0, h1);
    agent_cold_s += a1 - a0;
    agent_warm_s += agents_cpu_s(b, hosts) - a1;
  }
  // CPU figures are means over the runs; "agents" counts the serve processes, not the scripts
  // they start; "idle" is the share of the host's CPUs left idle during the run.
  auto line = [&](const char* mode, const Series& s, double agent_s, double idle,
                  const char* target) {
    std::printf("fan-out %4zu %s mp=%-4ld %zu proc  wall median %6.0f ms  min %6.0f  max %6.0f"
                "  CPU: CLI %5.0f ms, agents %5.0f ms, host idle %2.0f%%  %s\n",
                hosts, mode, max_parallel, lists.size(), percentile(s.wall_ms, 0.5),
                percentile(s.wall_ms, 0), percentile(s.wall_ms, 1), percentile(s.cpu_ms, 0.5),
                agent_s * 1000 / std::max(s.runs, 1), idle * 100 / std::max(s.runs, 1), target);
    std::printf("%-12s %d runs, %d failed, TLS handshakes per run: %d full, %d resumed\n", "",
                s.runs, s.failed, s.full / std::max(s.runs, 1), s.resumed / std::max(s.runs, 1));
    if (!s.first_error.empty()) std::printf("%-12s first failure: %s\n", "", s.first_error.c_str());
  };
  line("cold", cold, agent_cold_s, idle_cold, "");
  line("warm", warm, agent_warm_s, idle_warm, hosts == 1000 ? "[target <= 2000 ms]" : "");
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dispatcher-bench path/to/ctrl-exec [runs=30] [agents=1000] "
                         "[fanout_runs=3] [high_parallel=256]\n");
    return 2;
  }
  Bench b;
  b.binary = argv[1];
  const int runs = std::max(argc > 2 ? std::atoi(argv[2]) : 30, 3);
  const int agents = std::max(argc > 3 ? std::atoi(argv[3]) : 1000, 1);
  const int fanout_runs = std::max(argc > 4 ? std::atoi(argv[4]) : 3, 1);
  const long high_parallel = argc > 5 ? std::atol(argv[5]) : 256;
  // Each agent holds a few descriptors, and ours a few per child; the CLI processes inherit
  // this limit and hold up to max_parallel sockets each.
  long nofile = init("dispatcher-bench", 1800, 4096 + 4L * agents);

  b.fleet = make_fleet("disp-bench", "max_parallel = 64\n");
  b.cache_path = b.fleet.disp_root + "/var/lib/ctrl-exec/tls-sessions";
  b.out_dir = b.fleet.base + "/cli";
  write(b.out_dir + "/.keep", "");
  add_agents(b.fleet, b.binary, agents);
  long rss_sum = 0;
  for (const auto& a : b.fleet.agents)
    rss_sum += std::max(0L, proc_status_kb(a.pid, "VmRSS"));
  std::printf("dispatcher bench: %s, %ld CPUs online, RLIMIT_NOFILE %ld\n", b.binary.c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), nofile);
  std::printf("%d agents started in %.1f s (files and certs %.1f s); agents' RSS %s in total, "
              "%.0f kB each\n\n",
              agents, b.fleet.start_s, b.fleet.setup_s, mib(rss_sum).c_str(),
              static_cast<double>(rss_sum) / agents);

  // The floor: spawning the static binary and letting it exit.
  Series floor;
  for (int i = 0; i < runs; ++i)
    floor.add(run_cli(b, {{"--version"}}, Kind::none, 0));
  print_single("ctrl-exec --version", floor, "(process floor)");

  const std::string one = b.fleet.agents[0].name;
  single_agent(b, "ced ping", {"ced", "ping", one, "--json"}, Kind::ping, runs);
  single_agent(b, "ced run true", {"ced", "run", one, "true", "--json"}, Kind::run, runs);
  std::printf("\n");

  std::vector<size_t> sizes;
  for (size_t n : {size_t(100), size_t(500), size_t(1000)})
    if (n <= static_cast<size_t>(agents)) sizes.push_back(n);
  if (sizes.empty() || sizes.back() != static_cast<size_t>(agents))
    sizes.push_back(static_cast<size_t>(agents));
  for (size_t n : sizes)
    fan_out(b, n, fanout_runs, 64);
  if (high_parallel > 0 && high_parallel != 64) {
    write_dispatcher_conf(b.fleet, "max_parallel = " + std::to_string(high_parallel) + "\n");
    std::printf("\n");
    for (size_t n : sizes)
      if (n > 64) fan_out(b, n, fanout_runs, high_parallel);
  }

  long rss_after = 0;
  for (const auto& a : b.fleet.agents)
    rss_after += std::max(0L, proc_status_kb(a.pid, "VmRSS"));
  std::printf("\nagents' RSS after the runs: %s in total\n", mib(rss_after).c_str());
  teardown(b.fleet);
  return 0;
}
