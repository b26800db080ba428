// Default paths; see paths.hpp.
#include "base/paths.hpp"

#include <cstdlib>

namespace cx::paths {

const std::string& root() {
  static const std::string value = [] {
    const char* env = std::getenv("CTRL_EXEC_ROOT");
    std::string r = env ? env : "";
    while (!r.empty() && r.back() == '/')
      r.pop_back();
    return r;
  }();
  return value;
}

std::string rooted(std::string_view abs) {
  return root() + std::string(abs);
}

std::string dispatcher_etc() {
  return rooted("/etc/ctrl-exec");
}
std::string dispatcher_config() {
  return rooted("/etc/ctrl-exec/ctrl-exec.conf");
}
std::string dispatcher_state() {
  return rooted("/var/lib/ctrl-exec");
}
std::string registry_dir() {
  return rooted("/var/lib/ctrl-exec/agents");
}
std::string pairing_dir() {
  return rooted("/var/lib/ctrl-exec/pairing");
}
std::string locks_dir() {
  return rooted("/var/lib/ctrl-exec/locks");
}
std::string runs_dir() {
  return rooted("/var/lib/ctrl-exec/runs");
}
std::string rotation_file() {
  return rooted("/var/lib/ctrl-exec/rotation.json");
}
std::string scripts_cache() {
  return rooted("/var/lib/ctrl-exec/scripts.cache");
}
std::string pairing_pidfile() {
  return rooted("/var/lib/ctrl-exec/pairing-mode.pid");
}
std::string tls_pair_record() {
  return rooted("/var/lib/ctrl-exec/tls-pair-checked");
}

std::string tls_session_cache() {
  return rooted("/var/lib/ctrl-exec/tls-sessions");
}

std::string agent_etc() {
  return rooted("/etc/ctrl-exec-agent");
}
std::string agent_config() {
  return rooted("/etc/ctrl-exec-agent/agent.conf");
}
std::string agent_allowlist() {
  return rooted("/etc/ctrl-exec-agent/scripts.conf");
}
std::string agent_cert() {
  return rooted("/etc/ctrl-exec-agent/agent.crt");
}
std::string agent_key() {
  return rooted("/etc/ctrl-exec-agent/agent.key");
}
std::string agent_ca() {
  return rooted("/etc/ctrl-exec-agent/ca.crt");
}
std::string agent_revoked() {
  return rooted("/etc/ctrl-exec-agent/revoked-serials");
}
std::string agent_state() {
  return rooted("/var/lib/ctrl-exec-agent");
}
std::string agent_trusted_map() {
  return rooted("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers");
}
std::string agent_staged_cert() {
  return rooted("/var/lib/ctrl-exec-agent/agent.crt.staged");
}
std::string agent_runs() {
  return rooted("/var/lib/ctrl-exec-agent/runs");
}
std::string agent_run_dir() {
  return rooted("/run/ctrl-exec-agent");
}
std::string agent_exec_socket() {
  return rooted("/run/ctrl-exec-agent/exec.sock");
}
std::string scripts_dir() {
  return rooted("/opt/ctrl-exec-scripts");
}

} // namespace cx::paths
