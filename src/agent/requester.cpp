// `ctrl-exec-agent request-pairing` (agent-and-wire §5.4): probe the dispatcher, make a key
// and CSR, show the pairing code, send the request on 7444, read both responses by
// Content-Length, check the nonce, then store the cert, key and CA and append the dispatcher
// to the trusted map. --background hands the waiting to a detached re-executed child.
#include "agent/requester.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/pairing_store.hpp"
#include "base/daemon.hpp"
#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/hostname.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "cli/cli.hpp"
#include "conf/agent.hpp"
#include "event/loop.hpp"
#include "event/tcp.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "proto/pairing_wire.hpp"
#include "tls/tls.hpp"

namespace cx::agent {
namespace {

using cli::out;
using conf::AgentPairingFiles;

constexpr uint64_t kProbeTimeoutMs = 5000;
constexpr uint64_t kConnectTimeoutMs = 30000;
// The dispatcher answers within 600 s (its approval timeout); the original's socket timeout.
constexpr uint64_t kAnswerTimeoutMs = 660 * 1000;
// How long the foreground of --background waits for its child to report the request id.
constexpr int kHandoffWaitMs = 120 * 1000;

// The background child finds the descriptor of its report pipe here.
constexpr const char* kHandoffEnv = "CTRL_EXEC_PAIRING_HANDOFF";

// The operator's message for a failure to reach the pairing port, by the failure's kind.
std::string connect_failure(const RequestPairingOptions& o, const Status& failure) {
  const std::string& err = failure.message();
  std::string where = o.dispatcher + ":" + std::to_string(o.port);
  std::string hint = "Start pairing mode on the dispatcher first: sudo ctrl-exec-dispatcher "
                     "pairing-mode";
  switch (failure.kind()) {
  case ErrorKind::dns:
    return "Cannot resolve the dispatcher '" + o.dispatcher + "': " + err;
  case ErrorKind::refused:
    return "Cannot connect to ctrl-exec at " + where +
           ": connection refused - is pairing mode running?\n" + hint;
  case ErrorKind::tls:    // something that does not speak TLS, or not our way
  case ErrorKind::closed: // a TLS server that hung up before answering
  case ErrorKind::tls_closed:
    return "ctrl-exec at " + where + " is not in pairing mode (" + err + ").\n" + hint;
  case ErrorKind::unreachable:
  case ErrorKind::timeout:
    return "Cannot reach ctrl-exec at " + where + ": " + err +
           ".\nCheck the address, and that port " + std::to_string(o.port) +
           " is open on the dispatcher.";
  default:
    return "Pairing failed: " + err;
  }
}

// A TCP connect with a short deadline, before any key work: our local address on that route
// is what the request reports as `ip`.
Result<std::string> probe(const RequestPairingOptions& o) {
  event::Loop loop;
  event::Connector conn(loop);
  Result<std::string> res = error("probe did not complete");
  conn.connect(o.dispatcher, o.port, kProbeTimeoutMs,
               [&](Result<std::unique_ptr<event::TcpStream>> r) {
                 if (!r.ok()) {
                   res = r.status();
                   return;
                 }
                 res = (*r)->local().ip();
                 (*r)->close();
               });
  loop.run();
  return res;
}

// Where the background child reports to its foreground: "<reqid>\n" or "!<message>\n".
class Handoff {
public:
  explicit Handoff(int fd) : fd_(fd) {}
  ~Handoff() { close(); }
  // False when the foreground is no longer there to read it (SIGPIPE is ignored: EPIPE).
  bool send(const std::string& line) {
    if (fd_ < 0) return false;
    std::string s = line + "\n";
    bool sent = ::write(fd_, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    close();
    return sent;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool active() const { return fd_ >= 0; }

private:
  int fd_;
};

struct Exchange {
  std::string reqid;
  std::optional<proto::PairResponse> second;
  std::string first_error; // the first response was an error (queue full, invalid hostname)
  Status transport_error;
  bool timed_out = false;
};

Exchange exchange(const RequestPairingOptions& o, const std::string& request, Handoff* handoff) {
  Exchange ex;
  event::Loop loop;
  auto creds = tls::Credentials::from_pem("", "", "");
  auto cfg = creds.ok() ? tls::Config::client(*creds, tls::PeerCheck::none)
                        : Result<std::shared_ptr<tls::Config>>(creds.status());
  if (!cfg.ok()) {
    ex.transport_error = cfg.status();
    return ex;
  }
  http::ClientOptions co;
  co.host = o.dispatcher;
  co.port = o.port;
  co.tls = *cfg; // no certificate check: trust comes from the operator comparing codes
  co.connect_timeout_ms = kConnectTimeoutMs;
  co.read_timeout_ms = kAnswerTimeoutMs;
  co.responses = 2;
  std::unique_ptr<http::ClientCall> call;
  event::Timer alarm(loop);
  int seen = 0;
  auto on_response = [&](const http::Response& resp) {
    if (++seen != 1) return;
    auto r = proto::parse_pair_response(resp.body);
    if (!r.ok()) {
      ex.first_error = r.message();
      call.reset();
      return;
    }
    if (r->status != "pending" || !is_reqid(r->reqid)) {
      ex.first_error = r->reason.empty() ? "unexpected answer '" + r->status + "'" : r->reason;
      call.reset();
      return;
    }
    ex.reqid = r->reqid;
    if (handoff) {
      if (!handoff->send(ex.reqid)) {
        // The foreground gave up waiting and told the operator that pairing failed: it must
        // not then succeed behind the operator's back.
        ex.first_error = "the foreground stopped waiting for the request id";
        call.reset();
        return;
      }
      alarm.start(static_cast<uint64_t>(o.timeout) * 1000, [&] {
        ex.timed_out = true;
        call.reset();
      });
    }
  };
  auto done = [&](http::ClientResult r) {
    alarm.stop();
    if (r.responses.size() >= 2) {
      auto second = proto::parse_pair_response(r.responses[1].body);
      if (second.ok())
        ex.second = std::move(*second);
      else
        ex.transport_error = second.status();
    } else if (ex.first_error.empty()) {
      ex.transport_error = r.status.ok() ? error("no answer") : r.status;
    }
  };
  call = http::ClientCall::start(loop, std::move(co),
                                 http::format_http10_request("POST", "/pair", request), done,
                                 on_response);
  loop.run();
  return ex;
}

std::string start_instructions() {
  std::string s = "\n";
  if (is_directory("/run/systemd/system")) {
    s += "The agent is paired. Start it, or restart it if it is already running:\n\n"
         "    sudo systemctl enable --now ctrl-exec-agent\n"
         "    sudo systemctl restart ctrl-exec-agent\n\n";
  } else if (is_executable_file("/etc/init.d/ctrl-exec-agent")) {
    s += "The agent is paired but not running yet. Enable and start it:\n\n"
         "    sudo /etc/init.d/ctrl-exec-agent enable\n"
         "    sudo /etc/init.d/ctrl-exec-agent start\n\n";
  } else {
    s += "The agent is paired but not running yet. Enable and start it:\n\n"
         "    sudo ctrl-exec-agent serve\n\n";
  }
  return s + "Then verify with: ctrl-exec-agent self-ping\n";
}

// Checks that apply before anything is sent; the message of the first that fails, or "".
std::string check_options(const RequestPairingOptions& o, const AgentPairingFiles& f) {
  if (o.dispatcher.empty())
    return "request-pairing needs --dispatcher <host> (the dispatcher's name or address)";
  if (o.lookup_by && *o.lookup_by != "ip" && *o.lookup_by != "hostname")
    return "--lookup-by must be 'ip' or 'hostname'";
  if (o.port < 1 || o.port > 65535) return "--port must be a port number (1-65535)";
  if (o.background && (o.timeout < 1 || o.timeout > 600))
    return "--timeout must be between 1 and 600 seconds with --background";
  // The certificate directory must be writable; a missing one is created when we can.
  for (const std::string& dir : {dirname(f.cert), dirname(f.key), dirname(f.ca)}) {
    if (!is_directory(dir) && !make_dirs(dir, 0750).ok())
      return "Cannot create '" + dir + "' - re-run as root (sudo ctrl-exec-agent request-pairing)";
    if (::access(dir.c_str(), W_OK) != 0)
      return "Cannot write to '" + dir +
             "' - re-run as root (sudo ctrl-exec-agent request-pairing)";
  }
  return {};
}

std::string pairing_hostname(bool warn) {
  std::string h = host_fqdn();
  if (warn && h.find('.') == std::string::npos) {
    std::fprintf(stderr,
                 "Warning: could not determine a fully-qualified domain name for this host;\n"
                 "registering the short name '%s'. A dispatcher on a different network or\n"
                 "subdomain may be unable to resolve it. Configure a domain (FQDN) on this host,\n"
                 "or pair with --lookup-by ip so the dispatcher reaches this agent by address.\n",
                 h.c_str());
  }
  return h;
}

// The foreground half of --background: start the child, print the reqid it reports, exit 0.
int start_background(const RequestPairingOptions& o) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return cli::die("pipe: " + errno_text(errno));
  // No event loop runs in this process yet, so the child is started by fork and exec.
  DetachedChild spec;
  spec.argv = {"ctrl-exec",
               "ctrl-exec-pairing",
               kRequestChildFlag,
               "--config",
               absolute_path(o.config_path),
               "--dispatcher",
               o.dispatcher,
               "--port",
               std::to_string(o.port),
               "--timeout",
               std::to_string(o.timeout),
               "--key-type",
               pki::key_type_text(o.key)};
  if (o.lookup_by) {
    spec.argv.push_back("--lookup-by");
    spec.argv.push_back(*o.lookup_by);
  }
  spec.env = {{kHandoffEnv, "3"}};
  spec.report_fd = pipefd[1];
  auto spawned = spawn_detached(spec);
  ::close(pipefd[1]);
  if (!spawned.ok()) {
    ::close(pipefd[0]);
    return cli::die(spawned.message());
  }
  pid_t child = *spawned;
  std::string line;
  uint64_t waited = 0;
  ::fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  for (;;) {
    char buf[4096];
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n > 0) {
      line.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break; // the child closed its end: the report is complete
    if (errno != EAGAIN && errno != EINTR) break;
    if (waited >= kHandoffWaitMs) break;
    ::usleep(20000);
    waited += 20;
  }
  ::close(pipefd[0]);
  while (!line.empty() && line.back() == '\n')
    line.pop_back();
  if (!line.empty() && line[0] != '!' && is_reqid(line)) {
    out(line + "\n");
    return 0;
  }
  if (line.empty()) {
    ::waitpid(child, nullptr, WNOHANG);
    std::fprintf(stderr, "Pairing failed: the background request did not start\n");
  } else {
    std::fprintf(stderr, "%s\n", line.substr(line[0] == '!' ? 1 : 0).c_str());
  }
  return kExitFatal;
}

} // namespace

int request_pairing(const RequestPairingOptions& o) {
  AgentPairingFiles files = conf::load_agent_pairing_files(o.config_path);
  const char* handoff_env = std::getenv(kHandoffEnv);
  bool child = o.background && handoff_env != nullptr;
  std::unique_ptr<Handoff> handoff;
  if (child) {
    auto fd = parse_uint(handoff_env);
    handoff = std::make_unique<Handoff>(fd ? static_cast<int>(*fd) : -1);
    ::unsetenv(kHandoffEnv);
  }
  // Failures go to stderr, or (background child) to the foreground that waits for the reqid.
  auto fail = [&](const std::string& msg, int code = kExitFatal) {
    if (handoff && handoff->active())
      handoff->send("!" + msg);
    else
      std::fprintf(stderr, "%s\n", msg.c_str());
    return code;
  };

  if (auto msg = check_options(o, files); !msg.empty()) return fail(msg);
  std::string hostname = pairing_hostname(!child);
  if (o.background && !child) return start_background(o);

  auto local_ip = probe(o);
  if (!local_ip.ok()) return fail(connect_failure(o, local_ip.status()));

  if (!o.background) out("Generating key and CSR for '" + hostname + "'...\n");
  auto key = pki::generate_key(o.key);
  if (!key.ok()) return fail("Cannot generate a key: " + key.message());
  auto csr = pki::create_csr(*key, hostname);
  if (!csr.ok()) return fail("Cannot create the CSR: " + csr.message());
  std::string nonce = random_hex(16);
  if (!o.background) {
    out("Pairing code: " + pki::pairing_code(*csr) +
        "\n  Verify this code matches the ctrl-exec display before approving.\n\n"
        "Connecting to ctrl-exec at " +
        o.dispatcher + " for pairing...\n");
  }

  proto::PairRequest req;
  req.hostname = hostname;
  req.csr = *csr;
  req.nonce = nonce;
  req.lookup_by = o.lookup_by;
  req.port = files.port;
  if (!local_ip->empty() && *local_ip != "unknown") req.ip = *local_ip;
  Exchange ex = exchange(o, proto::pair_request_json(req), handoff.get());

  if (!ex.first_error.empty()) return fail("Pairing failed: " + ex.first_error);
  if (ex.reqid.empty()) return fail(connect_failure(o, ex.transport_error));
  if (ex.timed_out) {
    log::warning("pair-timeout", {{"REQID", ex.reqid}});
    return kExitPairingTimeout;
  }
  if (!ex.second) return fail("Pairing failed: " + ex.transport_error.message());
  if (auto st = proto::check_pair_result(*ex.second, nonce); !st.ok()) {
    log::warning("pair-denied", {{"REQID", ex.reqid}, {"REASON", st.message()}});
    bool denied = ex.second->status != "approved";
    return fail((denied ? "Pairing denied: " : "Pairing failed: ") + st.message(),
                o.background ? kExitPairingDenied : kExitFatal);
  }
  if (auto st = store_pairing(files, *key, *ex.second); !st.ok())
    return fail("Pairing failed: cannot store the certificates: " + st.message());
  std::string id =
      ex.second->dispatcher_id.empty() ? ex.second->dispatcher_serial : ex.second->dispatcher_id;
  log::info("pair-complete",
            {{"STATUS", "approved"}, {"DISPATCHER", id}, {"DISPATCHER_HOST", o.dispatcher}});
  if (ex.second->dispatcher_serial.empty())
    std::fprintf(stderr, "Warning: the dispatcher sent no serial; this agent will refuse its "
                         "requests until one is trusted (re-pair with a dispatcher that has "
                         "run setup-ctrl-exec).\n");
  if (!o.background) out("Pairing complete. Certificates stored.\n" + start_instructions());
  return 0;
}

} // namespace cx::agent
