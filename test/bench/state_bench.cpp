// Benchmark: the dispatcher's state on the files and on etcd (issue 17), side by side. Starts a
// real etcd (Debian's etcd-server) on loopback with a temp data dir, and prints for both
// backends: `ced list-agents` at 1,000 and 10,000 agents, one `ced run` and one API `/run` on a
// real agent (so the difference is what the backend adds), and 100 lock acquisitions from 100
// threads at once. Figures only; nothing is asserted.
//
// Usage: state-bench path/to/ctrl-exec [runs=10]
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "etcdkv/etcd_kv.hpp"
#include "fleet.hpp"
#include "state/kv.hpp"
#include "state/locks.hpp"
#include "state/registry.hpp"

using namespace bench;

namespace {

constexpr int kCliTimeoutMs = 120000;

struct Series {
  std::vector<double> ms;
  int failed = 0;
  std::string first_error;
};

void run_cli(const std::string& binary, const std::vector<std::string>& env,
             const std::vector<std::string>& args, const std::string& dir, Series& s) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  double t0 = now_s();
  pid_t pid = spawn(argv, env, dir + "/out", dir + "/err", false);
  int rc = wait_exit(pid, kCliTimeoutMs);
  s.ms.push_back((now_s() - t0) * 1000);
  if (rc != 0 && ++s.failed == 1)
    s.first_error = "exit " + std::to_string(rc) + ": " + read_all(dir + "/err").substr(0, 300);
}

void print(const std::string& what, const Series& s) {
  std::printf("%-44s median %8.1f ms  p90 %8.1f ms  min %8.1f ms\n", what.c_str(),
              percentile(s.ms, 0.5), percentile(s.ms, 0.9), percentile(s.ms, 0));
  if (s.failed)
    std::printf("%-44s %d of %zu failed: %s\n", "", s.failed, s.ms.size(), s.first_error.c_str());
}

std::string record_json(size_t i) {
  return strf(
      "{\"hostname\":\"agent-%05zu\",\"ip\":\"10.%zu.%zu.%zu\",\"port\":7443,"
      "\"lookup_by\":\"ip\",\"tags\":{\"role\":\"%s\"},\"paired\":\"2026-01-01T00:00:00Z\"}",
      i, i / 65536 % 256, i / 256 % 256, i % 256, i % 2 ? "web" : "db");
}

struct Etcd {
  pid_t pid = -1;
  std::string url;
};

Etcd start_etcd(const std::string& dir) {
  int client = free_port(), peer = free_port();
  Etcd e;
  e.url = strf("http://127.0.0.1:%d", client);
  std::string p = strf("http://127.0.0.1:%d", peer);
  e.pid =
      spawn({"/usr/bin/etcd", "--name", "b1", "--data-dir", dir + "/etcd", "--listen-client-urls",
             e.url, "--advertise-client-urls", e.url, "--listen-peer-urls", p,
             "--initial-advertise-peer-urls", p, "--initial-cluster", "b1=" + p},
            child_env(dir), dir + "/etcd.out", dir + "/etcd.err", true);
  track(e.pid);
  return e;
}

std::string etcd_conf(const Etcd& e) {
  return "state_backend = etcd\netcd_endpoints = " + e.url + "\netcd_prefix = /bench/\n";
}

// 100 threads, each taking one lock at the same moment; the wall time of each acquisition.
Series locks_at_once(const std::string& dir) {
  Series s;
  std::vector<double> ms(100);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  std::vector<cx::state::Acquisition> held(100);
  for (int i = 0; i < 100; ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < 100)
        std::this_thread::yield();
      double t0 = now_s();
      held[i] = cx::state::Locks(dir).acquire({strf("host-%03d", i)}, "deploy");
      ms[i] = (now_s() - t0) * 1000;
    });
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < 100; ++i) {
    s.ms.push_back(ms[i]);
    if (!held[i].ok() && ++s.failed == 1) s.first_error = held[i].status.message();
  }
  return s;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: state-bench path/to/ctrl-exec [runs=10]\n");
    return 2;
  }
  const std::string binary = argv[1];
  const int runs = std::max(argc > 2 ? std::atoi(argv[2]) : 10, 3);
  init("state-bench", 1800, 1024);
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    std::printf("state-bench: /usr/bin/etcd is not installed (Debian: etcd-server); skipped\n");
    return 0;
  }
  Fleet fleet = make_fleet("state-bench", "");
  const std::string root = fleet.disp_root, dir = fleet.base + "/cli";
  write(dir + "/.keep", "");
  const auto env = child_env(root);
  Etcd etcd = start_etcd(fleet.base);
  cx::etcdkv::Options o;
  o.endpoints = {etcd.url};
  o.prefix = "/bench/";
  auto kv = cx::etcdkv::EtcdKv::open(o).value();
  double t0 = now_s();
  while (!kv->get("ready").ok()) {
    if (now_s() - t0 > 30) return std::fprintf(stderr, "etcd did not start\n"), 1;
    usleep(100000);
  }
  std::printf("state bench: %s, %ld CPUs online, etcd %s\n\n", binary.c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), etcd.url.c_str());

  size_t written = 0;
  for (size_t agents : {size_t{1000}, size_t{10000}}) {
    // Both backends hold the same records.
    t0 = now_s();
    for (; written < agents; ++written) {
      write(root + strf("/var/lib/ctrl-exec/agents/agent-%05zu.json", written),
            record_json(written) + "\n");
    }
    std::vector<std::thread> writers;
    std::atomic<size_t> next{0};
    for (int t = 0; t < 8; ++t)
      writers.emplace_back([&] {
        for (size_t i; (i = next++) < agents;)
          (void)kv->put(strf("agents/agent-%05zu", i), record_json(i));
      });
    for (auto& w : writers)
      w.join();
    std::printf("%zu agents in both backends (%.1f s)\n", agents, now_s() - t0);
    Series files, on_etcd;
    write_dispatcher_conf(fleet, "");
    run_cli(binary, env, {"ced", "list-agents"}, dir, files); // the index is written
    files = {};
    for (int i = 0; i < runs; ++i)
      run_cli(binary, env, {"ced", "list-agents"}, dir, files);
    write_dispatcher_conf(fleet, etcd_conf(etcd));
    for (int i = 0; i < runs; ++i)
      run_cli(binary, env, {"ced", "list-agents"}, dir, on_etcd);
    print(strf("list-agents, %zu agents, files", agents), files);
    print(strf("list-agents, %zu agents, etcd", agents), on_etcd);
  }

  // One real agent, in both registries; a warm `ced run` of `true` on it.
  write_dispatcher_conf(fleet, "");
  add_agents(fleet, binary, 1);
  auto rec = read_all(root + "/var/lib/ctrl-exec/agents/a0001.json");
  (void)kv->put("agents/a0001", rec);
  Series run_files, run_etcd;
  for (int i = 0; i < runs + 1; ++i)
    run_cli(binary, env, {"ced", "run", "a0001", "true"}, dir, run_files);
  write_dispatcher_conf(fleet, etcd_conf(etcd));
  for (int i = 0; i < runs + 1; ++i)
    run_cli(binary, env, {"ced", "run", "a0001", "true"}, dir, run_etcd);
  run_files.ms.erase(run_files.ms.begin()); // the first pays the full handshake
  run_etcd.ms.erase(run_etcd.ms.begin());
  std::printf("\n");
  print("ced run a0001 true, files", run_files);
  print("ced run a0001 true, etcd", run_etcd);
  std::printf("%-44s %+8.1f ms (median)\n", "  added by etcd",
              percentile(run_etcd.ms, 0.5) - percentile(run_files.ms, 0.5));

  // The API: one instance per backend, /run through curl.
  for (const char* backend : {"files", "etcd"}) {
    int port = free_port();
    write_dispatcher_conf(
        fleet, strf("api_bind = 127.0.0.1\napi_port = %d\napi_auth_default = allow\n%s", port,
                    std::string(backend) == "etcd" ? etcd_conf(etcd).c_str() : ""));
    pid_t api = spawn({binary, "ctrl-exec-api"}, env, dir + "/api.out", dir + "/api.err", true);
    track(api);
    t0 = now_s();
    while (read_all(dir + "/api.out").find("listening on") == std::string::npos &&
           now_s() - t0 < 10)
      usleep(50000);
    Series s;
    std::string url = strf("http://127.0.0.1:%d/run", port);
    for (int i = 0; i < runs + 1; ++i)
      run_cli("/usr/bin/curl", env,
              {"-sf", "-o", "/dev/null", "-H", "Content-Type: application/json", "-d",
               "{\"hosts\":[\"a0001\"],\"script\":\"true\"}", url},
              dir, s);
    s.ms.erase(s.ms.begin());
    print(strf("API POST /run (curl), %s", backend), s);
    kill(api, SIGTERM);
    wait_exit(api, 10000);
    untrack(api);
  }

  std::printf("\n");
  cx::state::set_shared_kv(nullptr);
  print("100 lock acquisitions at once, files", locks_at_once(fleet.base + "/locks"));
  cx::state::set_shared_kv(kv);
  print("100 lock acquisitions at once, etcd", locks_at_once(fleet.base + "/locks"));
  cx::state::set_shared_kv(nullptr);
  teardown(fleet);
  return 0;
}
