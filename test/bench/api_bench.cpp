// Benchmark: the real API (`ctrl-exec ctrl-exec-api`) in a temp root, with a few real agents
// registered in its registry, driven over loopback by our own keep-alive HTTP client on one
// libuv loop. Prints GET /health and POST /ping requests per second at concurrency 1 and 32,
// POST /run latency, the API's CPU per request, and its idle RSS and RSS under load. Figures
// are printed next to issue 6's targets; nothing is asserted.
//
// Usage: api-bench path/to/ctrl-exec [seconds=3] [agents=4] [runs=200]
//   seconds: length of each throughput phase
//   agents:  agents started (the /ping and /run figures use the first; one more /ping phase
//            spreads the requests over all of them)
//   runs:    sequential POST /run requests
// When `wrk` is on PATH, /health is also measured with it (wrk -t1 -c32, keep-alive).
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "event/loop.hpp"
#include "event/tcp.hpp"
#include "fleet.hpp"
#include "http/parser.hpp"

using namespace bench;
using namespace cx;

namespace {

constexpr uint64_t kConnectTimeoutMs = 10000;
constexpr double kGraceS = 30; // a phase ends at most this long after its duration

struct Load {
  std::string name;
  // The bytes of the i-th request (keep-alive requested).
  std::function<std::string(uint64_t i)> request;
  std::function<bool(const http::Response&)> good;
  int concurrency = 1;
  double seconds = 3;        // stop issuing after this...
  uint64_t max_requests = 0; // ...or after this many (0: no limit)
};

struct LoadResult {
  uint64_t ok = 0, bad = 0, connections = 0, errors = 0;
  double wall_s = 0, api_cpu_s = 0, client_cpu_s = 0;
  long peak_rss_kb = 0;
  std::vector<double> latency_ms;
  std::string first_bad;
};

std::string keep_alive_request(const std::string& method, const std::string& path,
                               const std::string& body) {
  std::string r =
      method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n";
  if (!body.empty())
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

// `load.concurrency` keep-alive connections, each sending its next request as soon as the
// previous response is complete. A connection the server closes is replaced (and counted).
LoadResult run_load(int port, pid_t api_pid, const Load& load) {
  event::Loop loop;
  LoadResult res;
  struct Conn {
    std::unique_ptr<event::Connector> connector;
    std::unique_ptr<event::TcpStream> tcp;
    http::ResponseParser parser;
    double sent_at = 0;
    bool busy = false;
  };
  std::vector<Conn> conns(static_cast<size_t>(load.concurrency));
  uint64_t issued = 0;
  bool stopping = false;
  int open = 0;
  event::Timer stop_timer(loop), hard_deadline(loop), sampler(loop);

  auto can_issue = [&] {
    return !stopping && (load.max_requests == 0 || issued < load.max_requests);
  };
  auto finish_if_idle = [&] {
    if (open == 0) {
      stop_timer.stop();
      hard_deadline.stop();
      sampler.stop();
    }
  };
  std::function<void(Conn&)> connect;
  auto close_conn = [&](Conn& c) {
    if (c.tcp) {
      c.tcp.reset(); // safe inside its own callbacks (event/tcp.cpp)
      --open;
    }
    c.busy = false;
    finish_if_idle();
  };
  auto send = [&](Conn& c) {
    if (!can_issue()) return close_conn(c);
    c.sent_at = now_s();
    c.busy = true;
    c.tcp->write(load.request(issued++));
  };
  connect = [&](Conn& conn) {
    Conn* cp = &conn; // the vector is never resized, so the element stays put
    conn.connector = std::make_unique<event::Connector>(loop);
    ++open;
    conn.connector->connect(
        "127.0.0.1", port, kConnectTimeoutMs, [&, cp](Result<std::unique_ptr<event::TcpStream>> r) {
          Conn& c = *cp;
          if (!r.ok()) {
            ++res.errors;
            if (res.first_bad.empty()) res.first_bad = r.message();
            --open;
            return finish_if_idle();
          }
          ++res.connections;
          c.tcp = std::move(*r);
          c.tcp->set_nodelay(true);
          c.parser.reset();
          c.tcp->read_start(
              [&, cp](std::string_view data) {
                Conn& c = *cp;
                while (!data.empty() && c.tcp) {
                  http::Progress p = c.parser.feed(data);
                  data.remove_prefix(p.consumed);
                  if (p.status == http::ParseStatus::need_more) return;
                  if (p.status == http::ParseStatus::error) {
                    ++res.errors;
                    return close_conn(c);
                  }
                  res.latency_ms.push_back((now_s() - c.sent_at) * 1000);
                  if (load.good(c.parser.response())) {
                    ++res.ok;
                  } else {
                    ++res.bad;
                    if (res.first_bad.empty())
                      res.first_bad = std::to_string(c.parser.response().status) + " " +
                                      c.parser.response().body.substr(0, 300);
                  }
                  c.parser.reset();
                  c.busy = false;
                  send(c);
                }
              },
              [&, cp](int) {
                Conn& c = *cp;
                // The server closed. Between requests (it did not keep the connection
                // alive), open another; in the middle of one, count an error and stop.
                bool was_busy = c.busy;
                if (was_busy) ++res.errors;
                close_conn(c);
                if (!was_busy && can_issue()) connect(c);
              });
          send(c);
        });
  };

  stop_timer.start(static_cast<uint64_t>(load.seconds * 1000), [&] { stopping = true; });
  hard_deadline.start(static_cast<uint64_t>((load.seconds + kGraceS) * 1000), [&] {
    stopping = true;
    for (auto& c : conns) {
      c.connector.reset();
      if (c.tcp) c.tcp->close();
    }
    open = 0;
    finish_if_idle();
  });
  sampler.start(
      20, [&] { res.peak_rss_kb = std::max(res.peak_rss_kb, proc_status_kb(api_pid, "VmRSS")); },
      20);
  double cpu0 = proc_cpu_s(api_pid), own0 = own_cpu_s(), t0 = now_s();
  for (auto& c : conns)
    connect(c);
  loop.run();
  res.wall_s = now_s() - t0;
  res.api_cpu_s = proc_cpu_s(api_pid) - cpu0;
  res.client_cpu_s = own_cpu_s() - own0;
  return res;
}

void print_load(const Load& load, const LoadResult& r, const char* target) {
  const double n = static_cast<double>(std::max<uint64_t>(r.ok, 1));
  std::printf("%-26s c=%-3d %8.0f req/s  (%llu ok, %llu bad, %llu errors, %llu connections, "
              "%.2f s)  %s\n",
              load.name.c_str(), load.concurrency, static_cast<double>(r.ok) / r.wall_s,
              static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.bad),
              static_cast<unsigned long long>(r.errors),
              static_cast<unsigned long long>(r.connections), r.wall_s, target);
  std::printf("%-26s latency median %.3f ms, p95 %.3f ms; API CPU %.1f us/req (%.0f req per "
              "API CPU-second); client CPU %.1f us/req; peak RSS %s\n",
              "", percentile(r.latency_ms, 0.5), percentile(r.latency_ms, 0.95),
              r.api_cpu_s * 1e6 / n, n / std::max(r.api_cpu_s, 1e-9), r.client_cpu_s * 1e6 / n,
              mib(r.peak_rss_kb).c_str());
  if (!r.first_bad.empty()) std::printf("%-26s first failure: %s\n", "", r.first_bad.c_str());
}

bool contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

// Runs `wrk` if it is on PATH (for a second opinion on /health); prints its summary lines.
void maybe_wrk(int port, double seconds) {
  if (system("command -v wrk >/dev/null 2>&1") != 0) {
    std::printf("wrk: not installed (skipped)\n");
    return;
  }
  std::string cmd = strf("wrk -t1 -c32 -d%ds -H 'Connection: keep-alive' "
                         "http://127.0.0.1:%d/health 2>&1",
                         std::max(1, static_cast<int>(seconds)), port);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return;
  char line[512];
  while (fgets(line, sizeof line, p))
    if (contains(line, "Requests/sec") || contains(line, "Latency") ||
        contains(line, "requests in") || contains(line, "Non-2xx") ||
        contains(line, "Socket errors"))
      std::printf("wrk /health c=32: %s", line);
  pclose(p);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: api-bench path/to/ctrl-exec [seconds=3] [agents=4] [runs=200]\n");
    return 2;
  }
  const std::string binary = argv[1];
  const double seconds = std::max(argc > 2 ? std::atof(argv[2]) : 3.0, 0.5);
  const int agents = std::max(argc > 3 ? std::atoi(argv[3]) : 4, 1);
  const int runs = std::max(argc > 4 ? std::atoi(argv[4]) : 200, 10);
  init("api-bench", 900, 4096);

  const int port = free_port();
  Fleet fleet = make_fleet("api-bench", "api_auth_default = allow\napi_bind = 127.0.0.1\n"
                                        "api_port = " +
                                            std::to_string(port) + "\n");
  add_agents(fleet, binary, agents);
  const std::string log_path = fleet.base + "/api.log";
  pid_t api =
      spawn({binary, "ctrl-exec-api"}, child_env(fleet.disp_root), "/dev/null", log_path, true);
  for (int i = 0;; ++i) {
    if (count_in_file(log_path, "ACTION=api-start") > 0) break;
    if (i == 1000) die("the API did not log ACTION=api-start within 10 s:\n" + read_all(log_path));
    if (waitpid(api, nullptr, WNOHANG) == api) {
      untrack(api);
      die("the API exited during start:\n" + read_all(log_path));
    }
    usleep(10000);
  }
  usleep(300000);
  std::printf("API bench: %s, pid %d, port %d, %d agents, %ld CPUs online\n", binary.c_str(), api,
              port, agents, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("idle RSS (listening, before any request): %s [target <= 6 MB]\n\n",
              mib(proc_status_kb(api, "VmRSS")).c_str());

  const std::string health = keep_alive_request("GET", "/health", "");
  auto health_ok = [](const http::Response& r) { return r.status == 200; };
  for (int c : {1, 32}) {
    Load l{"GET /health", [&](uint64_t) { return health; }, health_ok, c, seconds, 0};
    print_load(l, run_load(port, api, l), "[target >= 20000 req/s]");
  }

  const std::string one = fleet.agents[0].name;
  const std::string ping_one = keep_alive_request("POST", "/ping", "{\"hosts\":[\"" + one + "\"]}");
  auto ping_ok = [](const http::Response& r) {
    return r.status == 200 && contains(r.body, "\"status\":\"ok\"");
  };
  const pid_t agent0 = fleet.agents[0].pid;
  for (int c : {1, 32}) {
    Load l{"POST /ping (1 agent)", [&](uint64_t) { return ping_one; }, ping_ok, c, seconds, 0};
    double a0 = proc_cpu_s(agent0);
    LoadResult r = run_load(port, api, l);
    double agent_s = proc_cpu_s(agent0) - a0;
    print_load(l, r, "[target >= 1000 req/s]");
    std::printf("%-26s agent CPU %.1f us/req\n", "",
                agent_s * 1e6 / static_cast<double>(std::max<uint64_t>(r.ok, 1)));
  }
  if (agents > 1) {
    std::vector<std::string> reqs;
    for (const auto& a : fleet.agents)
      reqs.push_back(keep_alive_request("POST", "/ping", "{\"hosts\":[\"" + a.name + "\"]}"));
    Load l{"POST /ping (" + std::to_string(agents) + " agents, 1 each)",
           [&](uint64_t i) { return reqs[i % reqs.size()]; },
           ping_ok,
           32,
           seconds,
           0};
    print_load(l, run_load(port, api, l), "");
  }
  std::printf("API log so far: %d TLS=resumed, %d TLS=full agent connections\n\n",
              count_in_file(log_path, "TLS=resumed"), count_in_file(log_path, "TLS=full"));

  const std::string run_req =
      keep_alive_request("POST", "/run", "{\"hosts\":[\"" + one + "\"],\"script\":\"true\"}");
  Load rl{"POST /run true (1 agent)",
          [&](uint64_t) { return run_req; },
          [](const http::Response& r) { return r.status == 200 && contains(r.body, "\"exit\":0"); },
          1,
          600,
          static_cast<uint64_t>(runs)};
  print_load(rl, run_load(port, api, rl), "");

  std::printf("\n");
  maybe_wrk(port, seconds);
  usleep(300000);
  std::printf("\nidle RSS after the load: %s\n", mib(proc_status_kb(api, "VmRSS")).c_str());
  std::printf("peak RSS over the run (VmHWM): %s\n", mib(proc_status_kb(api, "VmHWM")).c_str());
  std::printf("API log: %d api-overload lines\n", count_in_file(log_path, "ACTION=api-overload"));
  teardown(fleet);
  return 0;
}
