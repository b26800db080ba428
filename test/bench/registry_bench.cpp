// Benchmark: the dispatcher's registry at 10,000 agents (issue 14). Makes a temp dispatcher root
// with that many registry records (varied tags: role, env, rack), then prints the wall time of
// `ctrl-exec ced list-agents` processes: with no index (deleted before each run, so each run
// reads every record and writes the index), with a current index, with a tag filter, with
// --json, and with no usable index (a directory where it belongs: every record read, nothing
// written; what every run cost before the index). Then, in this process, Registry::resolve_tags
// (what `ced run --tags` resolves with), list(), a list after one record changed in place, and
// bulk_update_tags with nothing to change. Figures are printed next to the targets;
// nothing is asserted.
//
// Usage: registry-bench path/to/ctrl-exec [runs=30] [agents=10000] [before=path/to/ctrl-exec]
//   runs:   processes (or in-process calls) per figure
//   agents: registry records written
//   before: another build (one without the index) to time `ced list-agents` with too
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/files.hpp"
#include "fleet.hpp"
#include "state/registry.hpp"
#include "state/registry_index.hpp"

using namespace bench;

namespace {

constexpr int kCliTimeoutMs = 60000;

struct Bench {
  std::string binary, root, registry, index, out_dir;
  std::vector<std::string> env;
};

struct Series {
  std::vector<double> ms, cpu_ms;
  int failed = 0;
  std::string first_error;
  size_t out_bytes = 0;
};

// One `ctrl-exec <args>` process: its wall time, from spawn to exit.
void run_cli(const Bench& b, const std::string& binary, const std::vector<std::string>& args,
             Series& s) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = b.out_dir + "/out", err = b.out_dir + "/err";
  double t0 = now_s();
  pid_t pid = spawn(argv, b.env, out, err, false);
  double cpu = 0;
  int rc = wait_exit(pid, kCliTimeoutMs, &cpu);
  s.ms.push_back((now_s() - t0) * 1000);
  s.cpu_ms.push_back(cpu * 1000);
  struct stat st;
  s.out_bytes = ::stat(out.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  if (rc != 0) {
    ++s.failed;
    if (s.first_error.empty())
      s.first_error = "exit " + std::to_string(rc) + ": " + read_all(err).substr(0, 300);
  }
}

void print(const char* what, const Series& s, const char* target) {
  std::printf("%-52s median %6.1f ms  p90 %6.1f ms  min %6.1f  CPU %6.1f ms  %s\n", what,
              percentile(s.ms, 0.5), percentile(s.ms, 0.9), percentile(s.ms, 0),
              percentile(s.cpu_ms, 0.5), target);
  if (s.failed)
    std::printf("%-52s %d of %zu failed: %s\n", "", s.failed, s.ms.size(), s.first_error.c_str());
}

std::string record_json(size_t i) {
  static const char* roles[] = {"web", "db", "cache"};
  cx::state::AgentRecord r;
  r.hostname = strf("agent-%05zu", i);
  r.ip = strf("10.%zu.%zu.%zu", i / 65536, (i / 256) % 256, i % 256);
  r.paired = strf("2026-%02zu-%02zuT04:17:27Z", 1 + i % 12, 1 + i % 28);
  r.expiry = strf("Feb %2zu 04:17:27 2029 GMT", 1 + i % 28);
  r.reqid = strf("%016zx", i * 2654435761u);
  r.lookup_by = i % 2 ? "ip" : "hostname";
  r.port = i % 10 ? 7443 : 7450;
  r.tags = {{"role", roles[i % 3]},
            {"env", (i / 3) % 2 ? "staging" : "prod"},
            {"rack", strf("r%zu", i % 100)}};
  r.dispatcher_serial = "7f3a9c";
  r.serial_status = "current";
  r.serial_confirmed = "2026-11-25T04:17:27Z";
  return cx::state::agent_record_json(r) + "\n";
}

int64_t coarse_now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Waits until every record written so far has settled (registry_index.hpp, kSettleNs), so
// "warm" means an index every entry of which is trusted, as in a registry that is not changing.
void wait_settled() {
  int64_t until = coarse_now_ns() + cx::state::kSettleNs + 20'000'000;
  while (coarse_now_ns() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

double ms_since(double t0) {
  return (now_s() - t0) * 1000;
}

void in_process(const Bench& b, int runs) {
  cx::state::Registry reg(b.registry);
  const cx::state::TagFilter web_prod{{"role", "web"}, {"env", "prod"}};
  std::vector<double> tags_ms, tags_cpu, list_ms, list_cpu, one_changed_ms;
  size_t matched = 0;
  for (int i = 0; i < runs; ++i) {
    double t0 = now_s(), c0 = own_cpu_s();
    auto res = reg.resolve_tags(web_prod);
    tags_ms.push_back(ms_since(t0));
    tags_cpu.push_back((own_cpu_s() - c0) * 1000);
    matched = res.hosts.size();
  }
  cx::state::IndexReport rep;
  size_t listed = 0;
  for (int i = 0; i < runs; ++i) {
    double t0 = now_s(), c0 = own_cpu_s();
    auto all = reg.list(&rep);
    list_ms.push_back(ms_since(t0));
    list_cpu.push_back((own_cpu_s() - c0) * 1000);
    listed = all.ok() ? all->size() : 0;
  }
  std::printf("\nin process (what `ced run --tags` and the API call):\n");
  std::printf("%-52s median %6.1f ms  p90 %6.1f ms  min %6.1f  CPU %6.1f ms  [target <= 20 ms]\n",
              strf("Registry::resolve_tags role=web,env=prod (%zu hosts)", matched).c_str(),
              percentile(tags_ms, 0.5), percentile(tags_ms, 0.9), percentile(tags_ms, 0),
              percentile(tags_cpu, 0.5));
  std::printf(
      "%-52s median %6.1f ms  p90 %6.1f ms  min %6.1f  CPU %6.1f ms  (%zu hits, %zu reads%s)\n",
      strf("Registry::list (%zu records)", listed).c_str(), percentile(list_ms, 0.5),
      percentile(list_ms, 0.9), percentile(list_ms, 0), percentile(list_cpu, 0.5), rep.hits,
      rep.reads, rep.listed ? ", directory read" : ", names from the index");

  // One record rewritten in place, same size (the change time moves): one file read again and
  // the index rewritten, then the next list is a full hit again once that file has settled.
  const std::string victim = b.registry + "/agent-00042.json";
  const std::string text = read_all(victim);
  for (int i = 0; i < std::min(runs, 5); ++i) {
    if (FILE* f = std::fopen(victim.c_str(), "r+")) {
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
    double t0 = now_s();
    (void)reg.list(&rep);
    one_changed_ms.push_back(ms_since(t0));
  }
  std::printf("%-52s median %6.1f ms  p90 %6.1f ms  min %6.1f  (%zu reads, written %s)\n",
              "Registry::list, one record changed in place", percentile(one_changed_ms, 0.5),
              percentile(one_changed_ms, 0.9), percentile(one_changed_ms, 0), rep.reads,
              rep.written ? "yes" : "no");

  // Discovery's write-back with every agent's tags as they are: nothing is written.
  auto all = reg.list();
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> same;
  if (all.ok())
    for (const auto& r : *all)
      same.emplace_back(r.hostname, r.tags);
  double t0 = now_s();
  auto written = reg.bulk_update_tags(same);
  std::printf("%-52s %6.1f ms  (%zu written)\n",
              strf("Registry::bulk_update_tags, %zu unchanged", same.size()).c_str(), ms_since(t0),
              written.ok() ? *written : 0);
  wait_settled();
  (void)reg.list(); // the changed record settles into the index again
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: registry-bench path/to/ctrl-exec [runs=30] [agents=10000] "
                         "[before=path/to/ctrl-exec]\n");
    return 2;
  }
  Bench b;
  b.binary = argv[1];
  const int runs = std::max(argc > 2 ? std::atoi(argv[2]) : 30, 3);
  const size_t agents = static_cast<size_t>(std::max(argc > 3 ? std::atoi(argv[3]) : 10000, 1));
  const std::string before = argc > 4 ? argv[4] : "";
  init("registry-bench", 1800, 256);

  Fleet fleet = make_fleet("registry-bench", "");
  b.root = fleet.disp_root;
  b.registry = b.root + "/var/lib/ctrl-exec/agents";
  b.index = b.registry + "/" + std::string(cx::state::kRegistryIndexDir) + "/" +
            std::string(cx::state::kRegistryIndexFile);
  b.out_dir = fleet.base + "/cli";
  write(b.out_dir + "/.keep", "");
  b.env = child_env(b.root);
  double t0 = now_s();
  for (size_t i = 0; i < agents; ++i)
    write(b.registry + strf("/agent-%05zu.json", i), record_json(i));
  std::printf("registry bench: %s, %ld CPUs online\n%zu registry records written in %.1f s\n\n",
              b.binary.c_str(), sysconf(_SC_NPROCESSORS_ONLN), agents, now_s() - t0);
  wait_settled();

  Series version, cold, warm, tags, json, unusable, old;
  for (int i = 0; i < runs; ++i)
    run_cli(b, b.binary, {"--version"}, version);
  for (int i = 0; i < runs; ++i) {
    ::unlink(b.index.c_str());
    run_cli(b, b.binary, {"ced", "list-agents"}, cold);
  }
  const size_t text_bytes = cold.out_bytes;
  struct stat st;
  const long index_bytes = ::stat(b.index.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
  for (int i = 0; i < runs; ++i)
    run_cli(b, b.binary, {"ced", "list-agents"}, warm);
  for (int i = 0; i < runs; ++i)
    run_cli(b, b.binary, {"ced", "list-agents", "--tags", "role=web,env=prod"}, tags);
  const size_t tags_bytes = tags.out_bytes;
  for (int i = 0; i < runs; ++i)
    run_cli(b, b.binary, {"ced", "list-agents", "--json"}, json);
  const size_t json_bytes = json.out_bytes;
  ::unlink(b.index.c_str());
  if (::mkdir(b.index.c_str(), 0755) != 0) die("cannot make " + b.index);
  for (int i = 0; i < runs; ++i)
    run_cli(b, b.binary, {"ced", "list-agents"}, unusable);
  ::rmdir(b.index.c_str());
  if (!before.empty())
    for (int i = 0; i < runs; ++i)
      run_cli(b, before, {"ced", "list-agents"}, old);
  (void)cx::state::Registry(b.registry).list(); // the index again, for what follows

  std::printf("`ctrl-exec ced list-agents` with %zu agents, %d processes each "
              "(index %ld bytes; output %zu bytes, %zu with the filter, %zu as JSON):\n",
              agents, runs, index_bytes, text_bytes, tags_bytes, json_bytes);
  print("ctrl-exec --version", version, "(process floor)");
  print("list-agents, no usable index (as before the index)", unusable, "");
  if (!before.empty()) print("list-agents, the `before` build", old, "");
  print("list-agents, no index (read all, write the index)", cold, "");
  print("list-agents, index current", warm, "[target <= 60 ms]");
  print("list-agents --tags role=web,env=prod", tags, "[target <= 60 ms]");
  print("list-agents --json", json, "");

  in_process(b, runs);
  teardown(fleet);
  return 0;
}
