// Every default path and port, in one place. CTRL_EXEC_ROOT, when set, prefixes every
// default path, so tests and unprivileged users run the real code inside a temp directory.
// Paths given explicitly in a config file are used as written.
#pragma once

#include <string>
#include <string_view>

namespace cx::paths {

inline constexpr int kAgentPort = 7443;
inline constexpr int kPairingPort = 7444;
inline constexpr int kApiPort = 7445;

// The value of CTRL_EXEC_ROOT without a trailing slash ("" when unset).
const std::string& root();
// root() + abs, for an absolute default path.
std::string rooted(std::string_view abs);

// Dispatcher side.
std::string dispatcher_etc();    // /etc/ctrl-exec (also the CA directory)
std::string dispatcher_config(); // /etc/ctrl-exec/ctrl-exec.conf
std::string dispatcher_state();  // /var/lib/ctrl-exec
std::string registry_dir();      // /var/lib/ctrl-exec/agents
std::string pairing_dir();       // /var/lib/ctrl-exec/pairing
std::string locks_dir();         // /var/lib/ctrl-exec/locks
std::string runs_dir();          // /var/lib/ctrl-exec/runs
std::string rotation_file();     // /var/lib/ctrl-exec/rotation.json
std::string scripts_cache();     // /var/lib/ctrl-exec/scripts.cache
std::string pairing_pidfile();   // /var/lib/ctrl-exec/pairing-mode.pid
std::string tls_session_cache(); // /var/lib/ctrl-exec/tls-sessions
std::string tls_pair_record();   // /var/lib/ctrl-exec/tls-pair-checked

// Agent side.
std::string agent_etc();         // /etc/ctrl-exec-agent
std::string agent_config();      // /etc/ctrl-exec-agent/agent.conf
std::string agent_allowlist();   // /etc/ctrl-exec-agent/scripts.conf
std::string agent_cert();        // /etc/ctrl-exec-agent/agent.crt
std::string agent_key();         // /etc/ctrl-exec-agent/agent.key
std::string agent_ca();          // /etc/ctrl-exec-agent/ca.crt
std::string agent_revoked();     // /etc/ctrl-exec-agent/revoked-serials
std::string agent_state();       // /var/lib/ctrl-exec-agent
std::string agent_trusted_map(); // /var/lib/ctrl-exec-agent/ctrl-exec-dispatchers
std::string agent_staged_cert(); // /var/lib/ctrl-exec-agent/agent.crt.staged
std::string agent_runs();        // /var/lib/ctrl-exec-agent/runs
std::string agent_run_dir();     // /run/ctrl-exec-agent
std::string agent_exec_socket(); // /run/ctrl-exec-agent/exec.sock
std::string scripts_dir();       // /opt/ctrl-exec-scripts

} // namespace cx::paths
