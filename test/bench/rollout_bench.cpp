// Fan-out over a 10,000-entry registry (issue 14): 1,000 real `ctrl-exec-agent serve` processes
// on loopback plus 9,000 registry entries pointing at loopback ports where nothing listens
// (each connection refused at once), every entry tagged `bench=fleet`. One
// `ced run --tags bench=fleet --batch 500 true --json` reaches all of them, 20 batches of 500,
// and must report 1,000 hosts exit 0 and 9,000 unreachable. Printed: wall time, the CLI's CPU
// time and peak RSS (wait4), the agents' CPU, cold (no TLS sessions) and warm. Figures only:
// nothing here is a pass/fail timing; a wrong count of results fails the run.
//
//   rollout-bench path/to/ctrl-exec [real=1000] [phantom=9000] [runs=2]
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/time.hpp"
#include "fleet.hpp"
#include "state/registry.hpp"
#include "json/json.hpp"

using namespace bench;

namespace {

// Ports on 127.0.0.1 that were free a moment ago (bound, then closed): nothing listens there.
std::vector<int> closed_ports(size_t n) {
  std::vector<int> out;
  while (out.size() < n) {
    int p = free_port();
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

struct Outcome {
  double wall_ms = 0, cpu_ms = 0;
  long maxrss_kb = 0;
  int exit_code = -1;
  int ok = 0, unreachable = 0, other = 0;
  size_t batches = 0;
  std::string first_other;
};

Outcome run_once(const std::string& binary, const Fleet& fleet, const std::string& out_dir, int n) {
  static const std::vector<std::string> env = child_env(fleet.disp_root);
  std::string out = out_dir + "/out" + std::to_string(n),
              err = out_dir + "/err" + std::to_string(n);
  Outcome o;
  double t0 = now_s();
  pid_t pid =
      spawn({binary, "ced", "run", "--tags", "bench=fleet", "--batch", "500", "true", "--json"},
            env, out, err, false);
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid) die("wait4 failed");
  untrack(pid);
  o.wall_ms = (now_s() - t0) * 1000;
  o.cpu_ms = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
             static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
  o.maxrss_kb = ru.ru_maxrss;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto doc = cx::json::parse(read_all(out));
  if (!doc.ok() || !doc->IsObject())
    die("not JSON: " + read_all(out).substr(0, 300) + read_all(err).substr(0, 600));
  if (const cx::json::Value* b = cx::json::find(*doc, "batches"); b && b->IsArray())
    o.batches = b->Size();
  const cx::json::Value* results = cx::json::find(*doc, "results");
  if (!results || !results->IsArray()) die("no results");
  for (const auto& r : results->GetArray()) {
    const cx::json::Value* state = cx::json::find(r, "state");
    const cx::json::Value* exit = cx::json::find(r, "exit");
    std::string s = state && state->IsString() ? state->GetString() : "";
    if (s == "ok" && exit && exit->IsInt() && exit->GetInt() == 0)
      ++o.ok;
    else if (s == "unreachable")
      ++o.unreachable;
    else if (o.other++ == 0)
      o.first_other = cx::json::find(r, "host") ? cx::json::find(r, "host")->GetString() : "?";
  }
  return o;
}

double agents_cpu_s(const Fleet& f) {
  double s = 0;
  for (const auto& a : f.agents)
    s += proc_cpu_s(a.pid);
  return s;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: rollout-bench path/to/ctrl-exec [real=1000] [phantom=9000] "
                         "[runs=2]\n");
    return 2;
  }
  const std::string binary = argv[1];
  const int real = std::max(argc > 2 ? std::atoi(argv[2]) : 1000, 1);
  const int phantom = std::max(argc > 3 ? std::atoi(argv[3]) : 9000, 0);
  const int runs = std::max(argc > 4 ? std::atoi(argv[4]) : 2, 1);
  long nofile = init("rollout-bench", 3600, 4096 + 4L * real);

  Fleet fleet = make_fleet("rollout-bench", "max_parallel = 64\n");
  std::string out_dir = fleet.base + "/cli";
  write(out_dir + "/.keep", "");
  add_agents(fleet, binary, real);

  // Every record gets the tag; the phantoms point at closed ports, spread over the names so
  // that each batch mixes both.
  cx::state::Registry registry(fleet.disp_root + "/var/lib/ctrl-exec/agents");
  for (const auto& a : fleet.agents) {
    auto rec = registry.get(a.name);
    if (!rec) die("no registry record for " + a.name);
    rec->tags = {{"bench", "fleet"}};
    if (!registry.register_agent(*rec).ok()) die("register " + a.name);
  }
  std::vector<int> ports = closed_ports(16);
  double t0 = now_s();
  for (int i = 0; i < phantom; ++i) {
    cx::state::AgentRecord rec;
    rec.hostname = strf("a%04d-p%d", i % std::max(real, 1) + 1, i);
    rec.ip = "127.0.0.1";
    rec.lookup_by = "ip";
    rec.port = ports[static_cast<size_t>(i) % ports.size()];
    rec.tags = {{"bench", "fleet"}};
    if (!registry.register_agent(rec).ok()) die("register " + rec.hostname);
  }
  std::printf("rollout bench: %s, %ld CPUs online, RLIMIT_NOFILE %ld\n", binary.c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), nofile);
  std::printf("%d real agents started in %.1f s; %d phantom entries (closed ports) written in "
              "%.1f s; registry: %d entries, all tagged bench=fleet\n\n",
              real, fleet.start_s, phantom, now_s() - t0, real + phantom);

  const std::string cache = fleet.disp_root + "/var/lib/ctrl-exec/tls-sessions";
  bool failed = false;
  for (int r = 0; r < runs; ++r) {
    for (const char* mode : {"cold", "warm"}) {
      if (std::string(mode) == "cold") unlink(cache.c_str());
      double a0 = agents_cpu_s(fleet);
      Outcome o = run_once(binary, fleet, out_dir, r * 2 + (mode[0] == 'w'));
      double agents_ms = (agents_cpu_s(fleet) - a0) * 1000;
      std::printf("ced run --tags bench=fleet --batch 500 true, %s: wall %7.0f ms  CLI CPU %6.0f "
                  "ms  CLI peak RSS %s  agents CPU %6.0f ms  [%zu batches; %d exit 0, %d "
                  "unreachable, %d other; exit %d]\n",
                  mode, o.wall_ms, o.cpu_ms, mib(o.maxrss_kb).c_str(), agents_ms, o.batches, o.ok,
                  o.unreachable, o.other, o.exit_code);
      if (o.ok != real || o.unreachable != phantom || o.other != 0) {
        failed = true;
        std::printf("  wrong results (first other host: %s)\n", o.first_other.c_str());
      }
    }
  }
  teardown(fleet);
  return failed ? 1 : 0;
}
