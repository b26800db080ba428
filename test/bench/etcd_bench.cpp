// Benchmark: the etcd client's primitives (src/etcdkv) against a real etcd (Debian's
// etcd-server) on loopback, one member, temp data dir. Prints the latency of one get, one put,
// one create + remove pair, the private event loop each call makes (alone), and 100 lock-like
// creates (create-if-absent, then remove) from 4 threads at once: once on 100 distinct keys,
// once all 4 threads racing for the same 100 keys. Each call is one HTTP/1.0 request on a new
// connection. Figures only; nothing is asserted.
//
// Usage: etcd-bench [runs=300]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "etcdkv/etcd_kv.hpp"
#include "event/loop.hpp"
#include "fleet.hpp"

using namespace bench;

namespace {

struct Series {
  std::vector<double> ms;
  int failed = 0;
  std::string first_error;
  void add(double t0, const cx::Status& st) {
    ms.push_back((now_s() - t0) * 1000);
    if (!st.ok() && ++failed == 1) first_error = st.message();
  }
};

void print(const std::string& what, const Series& s) {
  std::printf("%-46s median %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  min %7.3f ms\n", what.c_str(),
              percentile(s.ms, 0.5), percentile(s.ms, 0.9), percentile(s.ms, 0.99),
              percentile(s.ms, 0));
  if (s.failed)
    std::printf("%-46s %d of %zu failed: %s\n", "", s.failed, s.ms.size(), s.first_error.c_str());
}

// 4 threads, 100 create + remove operations in all, started at one moment. With `same_keys`
// every thread tries each of the 100 keys (a lock 4 holders want); otherwise each thread has
// its own 25. Prints each create's latency, the wall time and how many creates won.
void creates_at_once(cx::etcdkv::EtcdKv& kv, bool same_keys, const std::string& tag) {
  constexpr int kThreads = 4, kKeys = 100;
  std::mutex mu;
  Series s;
  std::atomic<int> ready{0}, won{0};
  std::vector<std::thread> threads;
  double t0 = 0;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      if (++ready == kThreads) t0 = now_s();
      while (ready < kThreads)
        std::this_thread::yield();
      for (int i = 0; i < (same_keys ? kKeys : kKeys / kThreads); ++i) {
        int k = same_keys ? i : t * (kKeys / kThreads) + i;
        std::string key = strf("%s/%03d", tag.c_str(), k);
        double c0 = now_s();
        auto r = kv.create(key, strf("thread %d", t));
        std::lock_guard lock(mu);
        s.add(c0, r.status());
        if (r.ok() && *r) ++won;
      }
    });
  for (auto& t : threads)
    t.join();
  double wall = now_s() - t0;
  print(strf("create, 4 threads, %s", same_keys ? "same 100 keys" : "100 distinct keys"), s);
  std::printf("%-46s %d creates in %.1f ms wall (%.0f/s), %d won\n", "", int(s.ms.size()),
              wall * 1000, s.ms.size() / wall, won.load());
  for (int k = 0; k < kKeys; ++k)
    (void)kv.remove(strf("%s/%03d", tag.c_str(), k));
}

} // namespace

int main(int argc, char** argv) {
  const int runs = std::max(argc > 1 ? std::atoi(argv[1]) : 300, 10);
  init("etcd-bench", 600, 1024);
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    std::printf("etcd-bench: /usr/bin/etcd is not installed (Debian: etcd-server); skipped\n");
    return 0;
  }
  char tmpl[] = "/tmp/cx-etcd-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) die("mkdtemp");
  const std::string dir = tmpl;
  int client = free_port(), peer = free_port();
  const std::string url = strf("http://127.0.0.1:%d", client);
  const std::string p = strf("http://127.0.0.1:%d", peer);
  pid_t pid =
      spawn({"/usr/bin/etcd", "--name", "b1", "--data-dir", dir + "/data", "--listen-client-urls",
             url, "--advertise-client-urls", url, "--listen-peer-urls", p,
             "--initial-advertise-peer-urls", p, "--initial-cluster", "b1=" + p},
            child_env(dir), dir + "/etcd.out", dir + "/etcd.err", true);
  track(pid);

  cx::etcdkv::Options o;
  o.endpoints = {url};
  o.prefix = "/bench/";
  auto kv = cx::etcdkv::EtcdKv::open(o).value();
  double t0 = now_s();
  while (!kv->get("ready").ok()) {
    if (now_s() - t0 > 30) die("etcd did not start");
    usleep(100000);
  }
  std::printf("etcd bench: etcd %s (one member), %ld CPUs online, %d runs each\n\n", url.c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), runs);

  Series loop;
  for (int i = 0; i < runs; ++i) {
    double c0 = now_s();
    { cx::event::Loop l; }
    loop.add(c0, {});
  }
  print("a private event::Loop, made and closed", loop);

  (void)kv->put("k", std::string(200, 'x'));
  Series get, put, pair;
  for (int i = 0; i < runs; ++i) {
    double c0 = now_s();
    get.add(c0, kv->get("k").status());
  }
  for (int i = 0; i < runs; ++i) {
    double c0 = now_s();
    put.add(c0, kv->put("k", std::string(200, 'x')));
  }
  for (int i = 0; i < runs; ++i) {
    double c0 = now_s();
    auto created = kv->create("lock", "me");
    cx::Status st = created.status();
    if (st.ok()) st = kv->remove("lock").status();
    pair.add(c0, st);
  }
  print("get (200-byte value)", get);
  print("put (200-byte value)", put);
  print("create + remove (a lock taken and given back)", pair);
  std::printf("\n");
  creates_at_once(*kv, false, "distinct");
  creates_at_once(*kv, true, "same");

  stop_all();
  std::system(("rm -rf '" + dir + "'").c_str());
  return 0;
}
