// The agent's small modes; see modes.hpp.
#include "agent/modes.hpp"
#include "base/exit_codes.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "conf/allowlist.hpp"
#include "event/loop.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"
#include "proto/agent_wire.hpp"
#include "proto/executor_frame.hpp"
#include "tls/tls.hpp"
#include "json/json.hpp"

namespace cx::agent {

namespace {

// "missing file: <p>" or "cannot parse cert: <p>" for the pairing state of cert, key and ca;
// on success, the certificate's notAfter in OpenSSL's text form.
Result<std::string> pairing_state(const std::string& cert, const std::string& key,
                                  const std::string& ca) {
  for (const std::string* p : {&cert, &key, &ca})
    if (!path_exists(*p)) return error("missing file: " + *p);
  auto pem = read_file(cert, 1u << 20);
  if (!pem.ok()) return error("cannot parse cert: " + cert);
  auto info = pki::cert_info(*pem);
  if (!info.ok()) return error("cannot parse cert: " + cert);
  return openssl_time(info->not_after);
}

struct TlsFiles {
  std::string cert, key, ca;
};

// The configured TLS paths, or the defaults when agent.conf cannot be read (the original read
// only the defaults; docs/COMPATIBILITY.md).
TlsFiles tls_files(const Paths& paths) {
  auto cfg = conf::load_agent_config(paths.config);
  if (cfg.ok()) return {cfg->config.cert, cfg->config.key, cfg->config.ca};
  return {paths::agent_cert(), paths::agent_key(), paths::agent_ca()};
}

// The opening lines of self-check and self-ping: agent.conf, or nullopt after printing why
// it cannot be used.
std::optional<conf::AgentConfig> checked_config(const Paths& paths) {
  std::printf("Checking config...\n");
  auto cfg = conf::load_agent_config(paths.config);
  if (!cfg.ok()) {
    std::printf("  Config error: %s\n", cfg.message().c_str());
    return std::nullopt;
  }
  std::printf("  Config OK (port %d)\n", cfg->config.port);
  return std::move(cfg->config);
}

// Asks the executor about a name no allowlist can hold: a working executor answers with its
// refusal. Returns "" when it does, else what went wrong.
std::string probe_executor(const std::string& socket_path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "socket: " + errno_text(errno);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::string why;
  if (socket_path.size() >= sizeof sa.sun_path) {
    why = "socket path too long";
  } else {
    std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
    auto frame = proto::encode_request({"self-check", "self-check", "", "", {}});
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      why = "connect: " + errno_text(errno);
    } else if (::write(fd, frame->data(), frame->size()) != static_cast<ssize_t>(frame->size())) {
      why = "write: " + errno_text(errno);
    } else {
      std::string in;
      char buf[4096];
      for (;;) {
        auto d = proto::decode_response(in);
        if (d.status == proto::FrameStatus::complete) {
          if (d.response.exit != -1 || d.response.err != proto::kExecNotPermitted)
            why = "unexpected answer (exit " + std::to_string(d.response.exit) + ")";
          break;
        }
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
          why = n == 0 ? "closed without an answer (is this user the executor's peer user?)"
                       : "read: " + errno_text(errno);
          break;
        }
        in.append(buf, static_cast<size_t>(n));
      }
    }
  }
  ::close(fd);
  return why;
}

std::string profile_summary(const conf::Profile& p) {
  return "run_as=" + p.run_as.value_or("(executor's user, root)") +
         " caps=" + (p.caps.empty() ? "-" : join(p.caps, ",")) +
         " writable=" + (p.writable.empty() ? "-" : join(p.writable, ":")) +
         " no_new_privileges=" + (p.no_new_privileges ? "yes" : "no");
}

} // namespace

int pairing_status(const Paths& paths) {
  TlsFiles f = tls_files(paths);
  auto st = pairing_state(f.cert, f.key, f.ca);
  if (!st.ok()) {
    std::printf("Not paired. Reason: %s\n", st.message().c_str());
    return kExitFailure;
  }
  std::printf("Paired. Certificate expires: %s\n", st->c_str());
  return 0;
}

int self_check(const Paths& paths) {
  auto cfg = checked_config(paths);
  if (!cfg) return kExitFailure;
  const conf::AgentConfig& c = *cfg;
  auto al = conf::load_allowlist(paths.allowlist);
  if (!al.ok()) {
    std::printf("  Allowlist error: %s\n", al.message().c_str());
    return kExitFailure;
  }
  for (const auto& w : al->warnings)
    std::fprintf(stderr, "ctrl-exec-agent: %s\n", w.c_str());
  conf::Allowlist scripts = std::move(al->scripts);
  for (const auto& w : conf::drop_outside_script_dirs(scripts, c.script_dirs))
    std::fprintf(stderr, "ctrl-exec-agent: %s\n", w.c_str());
  std::printf("  Allowlist OK (%zu scripts)\n", scripts.size());
  auto certs = pairing_state(c.cert, c.key, c.ca);
  if (certs.ok())
    std::printf("  Certs OK (expires %s)\n", certs->c_str());
  else
    std::printf("  Certs: NOT paired - %s\n", certs.message().c_str());
  for (const auto& [name, e] : scripts)
    std::printf("  Script '%s': %s  (profile: %s) [%s]\n", name.c_str(), e.path.c_str(),
                e.profile.c_str(), is_executable_file(e.path) ? "ok" : "NOT EXECUTABLE");
  auto undefined = conf::undefined_profiles(scripts, c.profiles);
  if (!undefined.empty()) {
    std::string list;
    for (const auto& [s, p] : undefined)
      list += (list.empty() ? "" : ", ") + s + " -> " + p;
    std::printf("  Profile error: undefined profile(s) referenced: %s\n", list.c_str());
  }
  for (const auto& [name, p] : c.profiles)
    std::printf("  Profile '%s': %s\n", name.c_str(), profile_summary(p).c_str());
  if (c.executor_socket) {
    std::string why = probe_executor(*c.executor_socket);
    if (why.empty())
      std::printf("  Executor OK (%s): profiles are enforced\n", c.executor_socket->c_str());
    else
      std::printf("  Executor: NOT answering on %s - %s\n", c.executor_socket->c_str(),
                  why.c_str());
  } else {
    std::printf("  Executor: not configured (executor_socket unset) - profiles are NOT "
                "enforced; scripts run as the agent user%s\n",
                c.require_executor ? "; serve will refuse to start (require_executor)" : "");
  }
  std::printf("Self-check complete.\n");
  return 0;
}

int self_ping(const Paths& paths) {
  auto cfg = checked_config(paths);
  if (!cfg) return kExitFailure;
  const conf::AgentConfig& c = *cfg;
  auto certs = pairing_state(c.cert, c.key, c.ca);
  if (!certs.ok()) {
    std::printf("  Paired: no - %s\n  Cannot self-ping: agent not paired.\n",
                certs.message().c_str());
    return kExitFailure;
  }
  std::printf("  Paired: yes (cert expires %s)\n", certs->c_str());
  std::printf("Connecting to 127.0.0.1:%d...\n", c.port);
  std::fflush(stdout);

  auto creds = tls::Credentials::load(c.cert, c.key, c.ca);
  if (!creds.ok()) {
    std::printf("  mTLS handshake failed: %s\n", creds.message().c_str());
    return kExitFailure;
  }
  auto tls_conf = tls::Config::client(*creds, tls::PeerCheck::required);
  if (!tls_conf.ok()) {
    std::printf("  mTLS handshake failed: %s\n", tls_conf.message().c_str());
    return kExitFailure;
  }
  event::Loop loop;
  http::ClientOptions o;
  o.host = "127.0.0.1";
  o.port = c.port;
  o.tls = *tls_conf;
  o.connect_timeout_ms = 5000;
  o.read_timeout_ms = 5000;
  proto::PingRequest ping{random_hex(4)};
  http::ClientResult result;
  auto call = http::ClientCall::start(loop, std::move(o),
                                      http::format_http10_request("POST", "/ping", ping.to_json()),
                                      [&](http::ClientResult r) { result = std::move(r); });
  loop.run();

  const std::string& err = result.status.message();
  switch (result.status.kind()) {
  case ErrorKind::refused:
    std::printf("  Port %d: not listening - is the agent running?\n", c.port);
    return kExitFailure;
  case ErrorKind::tls:         // the handshake itself
  case ErrorKind::timeout:     // connecting or handshaking took too long
  case ErrorKind::closed:      // the agent hung up before answering
  case ErrorKind::tls_closed:  // or during the handshake
  case ErrorKind::dns:         // (127.0.0.1 always resolves)
  case ErrorKind::unreachable: //
  case ErrorKind::io:          // reset, aborted
    std::printf("  mTLS handshake failed: %s\n", err.c_str());
    return kExitFailure;
  default: // an answer, or one that did not come in time: judged by the body below
    break;
  }
  std::printf("  Port %d: listening\n", c.port);
  std::printf("  mTLS handshake: OK\n");
  const http::Response* resp = result.response();
  std::string body = resp ? resp->body : "";
  auto doc = json::parse(body);
  auto reply = doc.ok() ? proto::ErrorReply::from_json(*doc, proto::Reading::lenient)
                        : Result<proto::ErrorReply>(doc.status());
  if (reply.ok() && reply->status == proto::kStatusOk) {
    std::printf("  Ping response: OK\n");
  } else if (reply.ok() && reply->error == proto::kSerialMismatch) {
    std::printf("  Ping response: 403 serial mismatch (expected - agent is running and "
                "enforcing policy)\n");
  } else {
    std::printf("  Ping response: unexpected - %s\n", resp ? body.c_str() : err.c_str());
    return kExitFailure;
  }
  std::printf("Self-ping complete.\n");
  return 0;
}

int promote_cert(const Paths& paths) {
  // Runs as ExecStartPre: whatever happens, it must not stop the agent from starting.
  auto cfg = conf::load_agent_config(paths.config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: promote-cert: %s\n", cfg.message().c_str());
    return 0;
  }
  const conf::AgentConfig& c = cfg->config;
  const std::string& staged = c.cert_staging_path;
  if (!path_exists(staged)) return 0;
  auto drop = [&](const std::string& why) {
    (void)remove_file(staged);
    log::warning("cert-promote", {{"ERROR", why}});
    return 0;
  };
  // promote-cert runs as root, and the staging directory belongs to the agent's user: a
  // symbolic link or FIFO planted as the staged cert is refused (and removed), not read.
  auto pem = read_regular_file(staged, 1u << 20);
  if (!pem.ok()) return drop(pem.message());
  auto ca = read_file(c.ca, 1u << 20);
  if (!ca.ok()) {
    // Without the CA we cannot judge the staged cert; keep it for a later attempt.
    log::warning("cert-promote", {{"ERROR", ca.message()}});
    return 0;
  }
  auto key = read_file(c.key, 1u << 20);
  if (!key.ok()) {
    log::warning("cert-promote", {{"ERROR", key.message()}});
    return 0;
  }
  if (Status v = pki::check_renewed_cert(*pem, *ca, *key); !v.ok()) return drop(v.message());
  WriteOptions o;
  o.mode = 0640;
  struct stat st;
  if (::stat(c.cert.c_str(), &st) == 0) {
    o.uid = st.st_uid;
    o.gid = st.st_gid;
  }
  if (Status w = write_file_atomic(c.cert, *pem, o); !w.ok()) {
    log::warning("cert-promote", {{"ERROR", w.message()}}); // staged file kept for a retry
    return 0;
  }
  (void)remove_file(staged);
  log::info("cert-promote", {{"STATUS", "installed"}});
  return 0;
}

int cert_staged(const Paths& paths) {
  auto cfg = conf::load_agent_config(paths.config);
  if (!cfg.ok()) return kExitFailure;
  return path_exists(cfg->config.cert_staging_path) ? 0 : 1;
}

int paired(const Paths& paths) {
  auto cfg = conf::load_agent_config(paths.config);
  if (!cfg.ok()) return kExitFailure;
  return first_missing_tls_file(cfg->config).empty() ? 0 : 1;
}

} // namespace cx::agent
