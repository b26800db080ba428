// Everything the agent serves from, loaded together: agent.conf, the allowlist (filtered by
// script_dirs), the schema sidecars, the trusted-dispatcher map, the revocation list and the
// parsed allowed_ips. A State is immutable once built; SIGHUP builds a new one and swaps it in,
// so requests in flight keep the snapshot they started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/allowed_ips.hpp"
#include "agent/revoked.hpp"
#include "agent/trusted_map.hpp"
#include "base/status.hpp"
#include "conf/agent.hpp"
#include "conf/allowlist.hpp"
#include "conf/sidecar.hpp"

namespace cx::agent {

struct Paths {
  std::string config;    // --config
  std::string allowlist; // --allowlist
};

struct State {
  conf::AgentConfig config;
  conf::Allowlist scripts;
  conf::SidecarSet sidecars;
  TrustedMap trusted;
  RevokedList revoked;
  AllowedIps allowed_ips;
};

// Loads agent.conf, scripts.conf and the sidecars, and checks that every script's profile is
// defined. A failure is the error text the startup block prints (exit 78) or the reason a
// reload is refused. Logs config-warn, schema-skip and schema-version-derive; prints allowlist
// skips on stderr.
Result<std::shared_ptr<State>> load_config_state(const Paths& paths);

// Loads the trusted map and the revocation list into `state`. At startup (`previous` null) an
// unreadable map or list is logged and treated as empty / nothing revoked; on a reload it keeps
// the previous one. Logs revoked-serials-absent when the list does not exist.
void load_trust_state(State& state, const State* previous);

// The full load for startup and SIGHUP.
Result<std::shared_ptr<State>> load_state(const Paths& paths, const State* previous);

// The message printed (stderr) when serve starts without executor_socket while some
// allowlisted script's profile sets run_as, caps or writable, which only the executor can
// apply ("" when there is nothing to say). The shipped [profile default] (run_as = nobody)
// counts: without an executor those scripts run as the agent's user.
std::string unenforced_profiles_warning(const State& state);

// The paired check of serve (§1.3 step 4): the first of cert, key, ca that does not exist, or
// "" when all three do.
std::string first_missing_tls_file(const conf::AgentConfig& c);

} // namespace cx::agent
