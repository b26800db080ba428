// Benchmark: the real agent (`ctrl-exec ctrl-exec-agent serve`) in a temp root, driven over
// loopback by our own HTTP/TLS client on one libuv loop. Prints idle RSS, /ping throughput with
// full and resumed handshakes (and the agent's CPU per request), /run latency, RSS with many
// open connections, and the wall time of many concurrent `sleep 1` runs. Figures are measured
// and printed next to issue 3's targets; nothing is asserted.
//
// Usage: agent-bench path/to/ctrl-exec [requests=1000] [clients=16] [connections=200]
//   requests:    full-handshake pings (resumed pings: 5x, sequential /bin/true runs: 1/5)
//   clients:     concurrent clients for the /ping phases
//   connections: held-open connections, and concurrent `sleep 1` runs
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/files.hpp"
#include "base/random.hpp"
#include "event/loop.hpp"
#include "event/tcp.hpp"
#include "fleet.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "pki/ca.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "proto/agent_wire.hpp"
#include "tls/tls.hpp"
#include "json/json.hpp"

using namespace cx;

extern char** environ;

namespace {

constexpr uint64_t kPhaseDeadlineMs = 120000; // no phase may run longer than this
constexpr uint64_t kCallTimeoutMs = 30000;    // connect+handshake, and read inactivity

pid_t g_agent = -1; // killed by the SIGALRM safety net and at exit

// Timing, /proc readings and file writing shared with the dispatcher and API benchmarks.
using bench::mib;
using bench::now_s;
using bench::own_cpu_s;
using bench::proc_cpu_s;
using bench::proc_status_kb;
using bench::write;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "agent-bench: %s\n", what.c_str());
  if (g_agent > 0) kill(g_agent, SIGKILL);
  std::exit(1);
}

template <typename T> T must(Result<T> r, const char* what) {
  if (!r.ok()) die(std::string(what) + ": " + r.message());
  return std::move(*r);
}

// The host's TcpExt ListenOverflows counter (/proc/net/netstat): connections dropped because a
// listen queue was full. System-wide, but on an otherwise quiet loopback it is the agent's.
long listen_overflows() {
  std::ifstream f("/proc/net/netstat");
  std::string names, values;
  while (std::getline(f, names) && std::getline(f, values)) {
    std::istringstream n(names), v(values);
    std::string name, value;
    while (n >> name && v >> value)
      if (name == "ListenOverflows") return std::strtol(value.c_str(), nullptr, 10);
  }
  return -1;
}

// --- The agent's files and process ---------------------------------------------------------

struct Fixture {
  std::string root;
  std::string ca_pem, disp_crt, disp_key; // the client side's credentials
};

// A throw-away CA, the agent's cert, a dispatcher cert whose serial is in the trusted map, the
// config and the allowlist (agentlib.py in test/e2e/agent lays out the same files).
Fixture make_fixture() {
  char tmpl[] = "/tmp/cx-agent-bench-XXXXXX";
  if (!mkdtemp(tmpl)) die("mkdtemp failed");
  Fixture fx;
  fx.root = tmpl;
  const std::string etc = fx.root + "/etc/ctrl-exec-agent";
  const std::string state = fx.root + "/var/lib/ctrl-exec-agent";
  const std::string scripts = fx.root + "/opt/ctrl-exec-scripts";

  std::string ca_key = must(pki::generate_key(), "CA key");
  fx.ca_pem =
      must(pki::create_ca_cert(ca_key, pki::CaOptions{.cn = "bench CA", .days = 2}), "CA cert");
  auto leaf = [&](const std::string& cn, const std::string& serial, std::string& key_out) {
    key_out = must(pki::generate_key(), "leaf key");
    std::string csr = must(pki::create_csr(key_out, cn), "CSR");
    return must(
        pki::sign_csr(csr, fx.ca_pem, ca_key, pki::IssueOptions{.serial = serial, .days = 2}),
        "sign");
  };
  std::string agent_key;
  std::string agent_crt = leaf("agent.bench", "0a11", agent_key);
  fx.disp_crt = leaf("ctrl-exec-dispatcher", "7f3a9c", fx.disp_key);

  write(etc + "/agent.crt", agent_crt, 0640);
  write(etc + "/agent.key", agent_key, 0640);
  write(etc + "/ca.crt", fx.ca_pem, 0644);
  write(state + "/ctrl-exec-dispatchers", "7f3a9c bench-dispatcher\n");
  write(scripts + "/sleep1.sh", "#!/bin/sh\nsleep 1\n", 0755);
  write(etc + "/scripts.conf", "true = /bin/true\nsleep1 = " + scripts + "/sleep1.sh\n");
  // Port 0: the agent binds a free port and logs it (ACTION=start PORT=n). Rate limits stay
  // on: our agent counts only failed connections, so a trusted dispatcher is never throttled
  // (docs/COMPATIBILITY.md). max_children keeps its default of 256.
  write(etc + "/agent.conf", "port = 0\ncert = " + etc + "/agent.crt\nkey = " + etc +
                                 "/agent.key\nca = " + etc +
                                 "/ca.crt\n\n[profile default]\nrun_as = nobody\n");
  return fx;
}

struct Agent {
  pid_t pid = -1;
  int port = 0;
  std::string log_path;
};

std::string read_all(const std::string& path) {
  auto r = read_file(path);
  return r.ok() ? *r : std::string();
}

Agent start_agent(const std::string& binary, const Fixture& fx) {
  Agent a;
  a.log_path = fx.root + "/agent.log";
  // Everything the child needs is built before fork(): it only makes system calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "CTRL_EXEC_", 10) != 0) env_strings.emplace_back(*e);
  env_strings.push_back("CTRL_EXEC_ROOT=" + fx.root);
  env_strings.push_back("CTRL_EXEC_LOG=stderr");
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = binary, arg1 = "ctrl-exec-agent", arg2 = "serve";
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  int log_fd = open(a.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) die("cannot open the agent's log or /dev/null");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); // the agent never outlives the bench
    if (getppid() != parent) _exit(127);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(log_fd, 2);
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  a.pid = g_agent = pid;
  // Wait for the start line, with a deadline.
  for (int i = 0; i < 1000; ++i) {
    std::string log = read_all(a.log_path);
    size_t at = log.find("ACTION=start PORT=");
    if (at != std::string::npos) {
      a.port = std::atoi(log.c_str() + at + 18);
      if (a.port > 0) return a;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      g_agent = -1;
      die("the agent exited during start:\n" + log);
    }
    usleep(10000);
  }
  die("the agent did not log ACTION=start within 10 s:\n" + read_all(a.log_path));
}

void stop_agent(Agent& a) {
  if (a.pid <= 0) return;
  kill(a.pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (waitpid(a.pid, &status, WNOHANG) == a.pid) {
      a.pid = g_agent = -1;
      return;
    }
    usleep(10000);
  }
  kill(a.pid, SIGKILL);
  waitpid(a.pid, &status, 0);
  a.pid = g_agent = -1;
}

// --- The client side --------------------------------------------------------------------------

enum class Resume { none, per_client, shared };

struct Phase {
  std::string path;                                // "/ping" or "/run"
  std::function<std::string()> body;               // a fresh body per request
  std::function<bool(const http::Response&)> good; // the response is a success
  int total = 0;                                   // requests
  int clients = 1;                                 // concurrent requests
  Resume resume = Resume::none;
  std::string shared_session; // Session::save() bytes, for Resume::shared
};

struct PhaseResult {
  int ok = 0, failed = 0, resumed = 0, unfinished = 0;
  double wall_s = 0, agent_cpu_s = 0, client_cpu_s = 0;
  long peak_rss_kb = 0;
  long listen_overflows = 0;
  std::vector<double> latency_ms;
  std::string first_error;
};

// Runs `phase.total` requests, at most `phase.clients` at once, each on a new connection.
PhaseResult run_phase(const Agent& agent, std::shared_ptr<tls::Config> tls, const Phase& phase) {
  event::Loop loop;
  PhaseResult res;
  const int n = phase.clients;
  std::vector<std::unique_ptr<http::ClientCall>> calls(n);
  std::vector<std::optional<tls::Session>> sessions(n);
  int started = 0, done = 0;
  bool over = false;
  event::Timer deadline(loop), poll(loop);
  std::string host = "127.0.0.1:" + std::to_string(agent.port);

  auto finish_all = [&] {
    over = true;
    deadline.stop();
    poll.stop();
  };
  std::function<void(int)> launch = [&](int i) {
    if (over || started >= phase.total) return;
    ++started;
    http::ClientOptions o;
    o.host = "127.0.0.1";
    o.port = agent.port;
    o.tls = tls;
    o.connect_timeout_ms = kCallTimeoutMs;
    o.read_timeout_ms = kCallTimeoutMs;
    if (phase.resume == Resume::per_client && sessions[i]) {
      o.resume = std::move(sessions[i]);
      sessions[i].reset();
    } else if (phase.resume == Resume::shared) {
      auto s = tls::Session::load(phase.shared_session);
      if (s.ok()) o.resume = std::move(*s);
    }
    double t0 = now_s();
    std::string req = http::format_request("POST", phase.path, host, phase.body());
    calls[i] = http::ClientCall::start(
        loop, std::move(o), std::move(req), [&, i, t0](http::ClientResult r) {
          res.latency_ms.push_back((now_s() - t0) * 1000);
          const http::Response* resp = r.response();
          if (r.status.ok() && resp && phase.good(*resp)) {
            ++res.ok;
          } else {
            ++res.failed;
            if (res.first_error.empty())
              res.first_error = !r.status.ok() ? r.status.message()
                                : resp ? "HTTP " + std::to_string(resp->status) + " " + resp->body
                                       : "no response";
          }
          if (r.tls_resumed) ++res.resumed;
          if (phase.resume == Resume::per_client && r.session) sessions[i] = std::move(r.session);
          if (++done == phase.total) finish_all();
          // Replacing calls[i] here is safe: the loop callback running this keeps the
          // finished call's state alive.
          launch(i);
        });
  };

  deadline.start(kPhaseDeadlineMs, [&] {
    finish_all();
    for (auto& c : calls)
      c.reset(); // cancels silently; the loop then runs dry
  });
  poll.start(
      20, [&] { res.peak_rss_kb = std::max(res.peak_rss_kb, proc_status_kb(agent.pid, "VmRSS")); },
      20);
  long overflows0 = listen_overflows();
  double cpu0 = proc_cpu_s(agent.pid), own0 = own_cpu_s(), t0 = now_s();
  for (int i = 0; i < n; ++i)
    launch(i);
  loop.run();
  res.listen_overflows = listen_overflows() - overflows0;
  res.wall_s = now_s() - t0;
  res.agent_cpu_s = proc_cpu_s(agent.pid) - cpu0;
  res.client_cpu_s = own_cpu_s() - own0;
  res.unfinished = phase.total - res.ok - res.failed;
  return res;
}

// Opens `count` connections at once, completes their (full) handshakes, leaves them idle, and
// returns the agent's RSS once all are established. Failures are counted in `failed`.
long held_connections_rss(const Agent& agent, std::shared_ptr<tls::Config> tls, int count,
                          int& established, int& failed) {
  event::Loop loop;
  std::vector<std::unique_ptr<event::Connector>> connectors;
  std::vector<std::unique_ptr<tls::Stream>> streams(count);
  established = failed = 0;
  long rss = -1;
  bool measured = false;
  event::Timer deadline(loop), settle(loop);
  auto close_all = [&] {
    deadline.stop();
    settle.stop();
    for (auto& s : streams)
      if (s) s->close();
    connectors.clear();
  };
  auto measure = [&] {
    if (measured) return;
    measured = true;
    rss = proc_status_kb(agent.pid, "VmRSS");
    close_all();
  };
  auto one_done = [&](bool ok) {
    ok ? ++established : ++failed;
    // Let the agent finish its side of the last handshakes before sampling.
    if (established + failed == count && !measured) settle.start(300, measure);
  };
  for (int i = 0; i < count; ++i) {
    connectors.push_back(std::make_unique<event::Connector>(loop));
    connectors.back()->connect("127.0.0.1", agent.port, kCallTimeoutMs,
                               [&, i](Result<std::unique_ptr<event::TcpStream>> r) {
                                 if (!r.ok()) {
                                   one_done(false);
                                   return;
                                 }
                                 streams[i] = std::make_unique<tls::Stream>(tls, std::move(*r));
                                 streams[i]->handshake([&](Status st) { one_done(st.ok()); });
                               });
  }
  deadline.start(kPhaseDeadlineMs, measure);
  loop.run();
  streams.clear();
  return rss;
}

// --- Figures ----------------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

void print_outcome(const char* name, const PhaseResult& r) {
  std::printf("%s ok/failed/unfinished: %d/%d/%d (%d resumed TLS sessions)\n", name, r.ok, r.failed,
              r.unfinished, r.resumed);
  std::printf("%s listen queue overflows (SYNs dropped, retried after 1 s): %ld\n", name,
              r.listen_overflows);
  if (!r.first_error.empty()) std::printf("%s first failure: %s\n", name, r.first_error.c_str());
}

int count_lines(const std::string& log, const std::string& needle) {
  int n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
    ++n;
  return n;
}

bool ping_ok(const http::Response& r) {
  if (r.status != 200) return false;
  auto doc = json::parse(r.body);
  if (!doc.ok()) return false;
  auto reply = proto::PingReply::from_json(*doc);
  return reply.ok() && reply->status == "ok";
}

bool run_ok(const http::Response& r) {
  if (r.status != 200) return false;
  auto doc = json::parse(r.body);
  if (!doc.ok()) return false;
  auto result = proto::RunResult::from_json(*doc);
  return result.ok() && result->exit == 0 && !result->error;
}

std::string run_body(const std::string& script) {
  proto::RunRequest req;
  req.script = script;
  req.reqid = new_reqid();
  req.username = "bench";
  return req.to_json();
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: agent-bench path/to/ctrl-exec [requests=1000] [clients=16] "
                         "[connections=200]\n");
    return 2;
  }
  const std::string binary = argv[1];
  const int requests = std::max(argc > 2 ? std::atoi(argv[2]) : 1000, 10);
  const int clients = std::max(argc > 3 ? std::atoi(argv[3]) : 16, 1);
  const int connections = std::max(argc > 4 ? std::atoi(argv[4]) : 200, 1);
  event::ignore_sigpipe();
  // A safety net over every phase's own deadline: never hang, never leave the agent behind.
  signal(SIGALRM, [](int) {
    if (g_agent > 0) kill(g_agent, SIGKILL);
    _exit(3);
  });
  alarm(900);

  Fixture fx = make_fixture();
  auto creds = must(tls::Credentials::from_pem(fx.disp_crt, fx.disp_key, fx.ca_pem), "creds");
  auto tls = must(tls::Config::client(creds, tls::PeerCheck::required), "client TLS config");
  Agent agent = start_agent(binary, fx);

  std::printf("agent bench: %s, pid %d, port %d, %ld CPUs online\n", binary.c_str(), agent.pid,
              agent.port, sysconf(_SC_NPROCESSORS_ONLN));
  // 1. Idle RSS: listening, nothing served yet (give it a moment to settle after the log line).
  usleep(200000);
  std::printf("idle RSS (listening, before any request): %s [target <= 4 MB]\n",
              mib(proc_status_kb(agent.pid, "VmRSS")).c_str());

  // Warm-up: one ping proves the setup and provides a session for the shared-resume phase.
  auto ping_body = [] { return proto::PingRequest{new_reqid()}.to_json(); };
  std::string shared_session;
  {
    event::Loop loop;
    http::ClientOptions o;
    o.host = "127.0.0.1";
    o.port = agent.port;
    o.tls = tls;
    o.connect_timeout_ms = o.read_timeout_ms = kCallTimeoutMs;
    std::string failure = "no response";
    auto call = http::ClientCall::start(
        loop, std::move(o), http::format_request("POST", "/ping", "127.0.0.1", ping_body()),
        [&](http::ClientResult res) {
          if (!res.status.ok())
            failure = res.status.message();
          else if (res.response() && ping_ok(*res.response()))
            failure.clear();
          else if (res.response())
            failure = "HTTP " + std::to_string(res.response()->status);
          if (res.session) shared_session = res.session->save();
        });
    loop.run();
    if (!failure.empty() || shared_session.empty())
      die("warm-up ping failed: " + failure + "\n" + read_all(agent.log_path));
  }

  // 2. /ping throughput: full handshakes, then resumed sessions (one session per client).
  Phase full{"/ping", ping_body, ping_ok, requests, clients, Resume::none, ""};
  PhaseResult f = run_phase(agent, tls, full);
  std::printf("\n/ping, full handshakes, %d requests, %d concurrent clients\n", requests, clients);
  print_outcome("ping full", f);
  std::printf("ping full throughput: %.0f req/s (wall %.2f s, client and agent share the CPUs)\n",
              f.ok / f.wall_s, f.wall_s);
  std::printf("ping full agent CPU: %.3f ms/req\n", f.agent_cpu_s * 1000 / std::max(f.ok, 1));
  std::printf("ping full per agent CPU-second: %.0f req/s [target >= 150 per core]\n",
              f.ok / std::max(f.agent_cpu_s, 1e-9));
  std::printf("ping full client CPU: %.3f ms/req\n", f.client_cpu_s * 1000 / std::max(f.ok, 1));

  Phase resumed{"/ping", ping_body, ping_ok, requests * 5, clients, Resume::per_client, ""};
  PhaseResult r = run_phase(agent, tls, resumed);
  std::printf("\n/ping, resumed sessions, %d requests, %d concurrent clients\n", requests * 5,
              clients);
  print_outcome("ping resumed", r);
  std::printf("ping resumed throughput: %.0f req/s (wall %.2f s) [target >= 3000]\n",
              r.ok / r.wall_s, r.wall_s);
  std::printf("ping resumed agent CPU: %.3f ms/req\n", r.agent_cpu_s * 1000 / std::max(r.ok, 1));
  std::printf("ping resumed per agent CPU-second: %.0f req/s\n",
              r.ok / std::max(r.agent_cpu_s, 1e-9));
  std::printf("ping resumed client CPU: %.3f ms/req\n", r.client_cpu_s * 1000 / std::max(r.ok, 1));
  std::printf("ping resumed latency median: %.2f ms, p95: %.2f ms\n", percentile(r.latency_ms, 0.5),
              percentile(r.latency_ms, 0.95));

  // 3. /run of /bin/true, sequential, resumed sessions.
  const int runs = std::max(requests / 5, 20);
  Phase seq{"/run", [] { return run_body("true"); }, run_ok, runs, 1, Resume::per_client, ""};
  PhaseResult s = run_phase(agent, tls, seq);
  std::printf("\n/run /bin/true, %d sequential requests, resumed sessions\n", runs);
  print_outcome("run true", s);
  std::printf("run true latency median: %.2f ms, p95: %.2f ms\n", percentile(s.latency_ms, 0.5),
              percentile(s.latency_ms, 0.95));
  std::printf("run true agent CPU: %.3f ms/req\n", s.agent_cpu_s * 1000 / std::max(s.ok, 1));

  // 4. RSS with `connections` handshaken connections held open and idle.
  int established = 0, conn_failed = 0;
  long held_overflows = listen_overflows();
  double held_t0 = now_s();
  long held_rss = held_connections_rss(agent, tls, connections, established, conn_failed);
  double held_wall = now_s() - held_t0;
  held_overflows = listen_overflows() - held_overflows;
  std::printf("\n%d connections held open (full handshakes, no request sent)\n", connections);
  std::printf("held connections established/failed: %d/%d in %.2f s\n", established, conn_failed,
              held_wall);
  std::printf("held connections listen queue overflows: %ld\n", held_overflows);
  std::printf("RSS with %d open connections: %s\n", established, mib(held_rss).c_str());

  // 5. `connections` concurrent runs of `sleep 1` (resumed sessions, as a dispatcher would).
  Phase sleeps{"/run",        [] { return run_body("sleep1"); },
               run_ok,        connections,
               connections,   Resume::shared,
               shared_session};
  PhaseResult z = run_phase(agent, tls, sleeps);
  std::printf("\n%d concurrent /run of a `sleep 1` script, resumed sessions\n", connections);
  print_outcome("sleep runs", z);
  std::printf("sleep runs wall time until all complete: %.2f s [target < 3 s]\n", z.wall_s);
  std::printf("sleep runs latency median: %.0f ms, p95: %.0f ms, max: %.0f ms\n",
              percentile(z.latency_ms, 0.5), percentile(z.latency_ms, 0.95),
              percentile(z.latency_ms, 1.0));
  std::printf("sleep runs peak agent RSS (sampled every 20 ms): %s\n", mib(z.peak_rss_kb).c_str());
  std::printf("sleep runs agent CPU: %.3f ms/run\n", z.agent_cpu_s * 1000 / std::max(z.ok, 1));

  // The same with full handshakes: every connection new, as a first contact would be.
  Phase sleeps_full{
      "/run", [] { return run_body("sleep1"); }, run_ok, connections, connections, Resume::none,
      ""};
  PhaseResult zf = run_phase(agent, tls, sleeps_full);
  std::printf("\n%d concurrent /run of a `sleep 1` script, full handshakes\n", connections);
  print_outcome("sleep runs full", zf);
  std::printf("sleep runs full wall time until all complete: %.2f s [target < 3 s]\n", zf.wall_s);
  std::printf("sleep runs full latency median: %.0f ms, p95: %.0f ms, max: %.0f ms\n",
              percentile(zf.latency_ms, 0.5), percentile(zf.latency_ms, 0.95),
              percentile(zf.latency_ms, 1.0));

  usleep(300000);
  std::printf("\nidle RSS after the load: %s\n", mib(proc_status_kb(agent.pid, "VmRSS")).c_str());
  std::printf("peak RSS over the run (VmHWM): %s\n",
              mib(proc_status_kb(agent.pid, "VmHWM")).c_str());
  std::string log = read_all(agent.log_path);
  std::printf("agent log: %d overload, %d rate-block, %d tls-failure lines\n",
              count_lines(log, "ACTION=overload"), count_lines(log, "ACTION=rate-block"),
              count_lines(log, "ACTION=tls-failure"));

  stop_agent(agent);
  std::error_code ec;
  std::filesystem::remove_all(fx.root, ec);
  return 0;
}
