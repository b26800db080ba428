// `ctrl-exec-agent serve`: start-up in the order of agent-and-wire §1.3, then the 7443 server
// until SIGTERM/SIGINT; see server.hpp.
#include <signal.h>

#include <cstdio>

#include "agent/async_repair.hpp"
#include "agent/metrics.hpp"
#include "agent/serve.hpp"
#include "agent/server.hpp"
#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/hostname.hpp"
#include "base/time.hpp"
#include "base/version.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"

namespace cx::agent {

namespace {

void print_config_error(const Paths& paths, const std::string& err) {
  std::fprintf(stderr,
               "ctrl-exec-agent: cannot start - configuration error.\n"
               "  %s\n"
               "  Config:    %s\n"
               "  Allowlist: %s\n"
               "  Note: comments must be on their own line; a '#' after a value is part of "
               "the value.\n",
               err.c_str(), paths.config.c_str(), paths.allowlist.c_str());
}

void print_unpaired(const std::string& missing) {
  std::fprintf(stderr,
               "ctrl-exec-agent: this agent has not been paired yet (missing %s).\n"
               "Pair it with a dispatcher first:\n"
               "  sudo ctrl-exec-agent request-pairing --dispatcher <dispatcher-host>\n"
               "Then check with:\n"
               "  ctrl-exec-agent pairing-status\n",
               missing.c_str());
}

Identity identity_of(const conf::AgentConfig& cfg) {
  Identity id;
  id.host = host_fqdn();
  id.version = std::string(version());
  id.expiry = "unknown";
  if (auto pem = read_file(cfg.cert, 1u << 20); pem.ok())
    if (auto info = pki::cert_info(*pem); info.ok()) id.expiry = openssl_time(info->not_after);
  return id;
}

} // namespace

int serve(const Paths& paths) {
  event::ignore_sigpipe();
  auto loaded = load_config_state(paths);
  if (!loaded.ok()) {
    print_config_error(paths, loaded.message());
    return kExitConfig;
  }
  std::shared_ptr<State> state = std::move(*loaded);
  if (state->config.require_executor && !state->config.executor_socket) {
    std::fprintf(stderr,
                 "ctrl-exec-agent: require_executor is set but executor_socket is not, in '%s': "
                 "refusing to run scripts without their profiles\n",
                 paths.config.c_str());
    return kExitConfig;
  }
  std::string warn = unenforced_profiles_warning(*state);
  if (!warn.empty()) std::fprintf(stderr, "%s\n", warn.c_str());
  load_trust_state(*state, nullptr);

  const auto& cfg = state->config;
  std::string missing = first_missing_tls_file(cfg);
  if (!missing.empty()) {
    print_unpaired(missing);
    return kExitConfig;
  }
  auto creds = tls::Credentials::load(cfg.cert, cfg.key, cfg.ca);
  if (!creds.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot use the TLS files: %s\n",
                 creds.message().c_str());
    return kExitFailure;
  }
  auto tls_conf = tls::Config::server(*creds, tls::PeerCheck::required);
  if (!tls_conf.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot set up TLS: %s\n", tls_conf.message().c_str());
    return kExitFailure;
  }

  event::Loop loop;
  ServerSettings settings;
  settings.port = cfg.port;
  AgentServer server(loop, paths, state, *tls_conf, identity_of(cfg), settings);
  if (Status st = server.listen(); !st.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot listen on port %d: %s\n", cfg.port,
                 st.message().c_str());
    return kExitFailure;
  }
  // Ours: GET /metrics over plain HTTP, only when metrics_bind is set.
  std::unique_ptr<MetricsListener> metrics;
  if (cfg.metrics_bind_ip) {
    metrics = std::make_unique<MetricsListener>(loop, *cfg.metrics_bind_ip, cfg.metrics_port,
                                                [&server] { return server.metrics_text(); });
    if (Status st = metrics->listen(); !st.ok()) {
      std::fprintf(stderr, "ctrl-exec-agent: cannot listen for metrics_bind %s port %d: %s\n",
                   cfg.metrics_bind_ip->c_str(), cfg.metrics_port, st.message().c_str());
      return kExitFailure;
    }
    log::info("metrics-start",
              {{"BIND", *cfg.metrics_bind_ip}, {"PORT", std::to_string(metrics->port())}});
  }
  event::SignalWatcher hup(loop), term(loop), intr(loop);
  (void)hup.start(SIGHUP, [&](int) { server.reload(); });
  bool stopping = false;
  auto stop = [&](int) {
    if (stopping) {
      loop.stop(); // a second signal: stop at once
      return;
    }
    stopping = true;
    if (metrics) metrics->stop_accepting();
    server.drain([&] { loop.stop(); });
  };
  (void)term.start(SIGTERM, stop);
  (void)intr.start(SIGINT, stop);
  // Async records left `running` by supervisors that are gone (a killed process tree, a
  // reboot) are marked interrupted now and every 30 s; see async_repair.hpp.
  AsyncRecordRepair repair(loop, [&server] { return server.state()->config.async_runs_dir; });
  repair.start();
  log::info("start", {{"PORT", std::to_string(server.port())}});
  loop.run();
  return 0;
}

} // namespace cx::agent
