// The typed agent configuration (agent.conf, spec agent-and-wire §2.2): every top-level key
// with its default, `[tags]`, and the `[profile <name>]` sections with their validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "conf/common.hpp"
#include "conf/ini.hpp"

namespace cx::conf {

// How the executor runs a script (applied only when executor_socket is set).
struct Profile {
  std::optional<std::string> run_as; // user name or uid; unset keeps the agent's user
  std::vector<std::string> caps;     // CAP_* names to keep
  std::vector<std::string> writable; // absolute paths left writable
  bool no_new_privileges = true;
  bool operator==(const Profile&) const = default;
};

// Validates one `[profile <name>]` section:
//  * run_as: `^([A-Za-z_][A-Za-z0-9_-]*|\d+)$`, a uid at most 4294967295; blank = unset;
//  * caps: split on `[,\s]+`, empties dropped, each `^CAP_[A-Z0-9_]+$`;
//  * writable: split on ':' (Perl split: trailing empty fields dropped), each starting '/';
//  * no_new_privileges: on when absent or `^(1|y|yes|true|on)$` (any case), off otherwise;
//  * other keys are ignored.
// Errors name the profile and the field, e.g. "Profile 'web': invalid caps entry 'cap_x'".
Result<Profile> parse_profile(std::string_view name, const KeyValues& fields);

struct AgentConfig {
  std::string path;                     // the file it was loaded from
  int port = 0;                         // required; `^\d+$`, at most 65535
  std::string cert, key, ca;            // required
  std::string trusted_dispatchers_path; // default cx::paths::agent_trusted_map()
  std::string revoked_serials;          // default cx::paths::agent_revoked()
  std::string cert_staging_path;        // default cx::paths::agent_staged_cert()
  std::string async_runs_dir;           // default cx::paths::agent_runs()
  std::vector<std::string> script_dirs; // colon-split, empties dropped; empty = no restriction
  std::optional<std::string> executor_socket;
  // Ours: serve refuses to start without executor_socket instead of running scripts unconfined
  // with a warning. yes/no (1/0, true/false, on/off); anything else is a config error.
  bool require_executor = false;
  int64_t stdin_timeout = 10;             // seconds
  std::optional<std::string> auth_hook;   // checked executable at load
  int64_t auth_hook_timeout = 10;         // seconds
  std::optional<std::string> allowed_ips; // raw; the agent module parses it
  bool rate_limit_disable = false;        // value starts with 1, y or Y
  RateLimit rate_limit_volume = kDefaultVolumeLimit;
  RateLimit rate_limit_probe = kDefaultProbeLimit;
  int64_t max_children = 256;
  // New keys the original lacks; their defaults keep its behaviour (no limit at all).
  int64_t script_timeout = 0;       // seconds; 0 = no timeout
  uint64_t script_output_limit = 0; // bytes per stream; 0 = unlimited
  // Against slow and flooding clients (issue 13); limits of ours, see docs/COMPATIBILITY.md.
  int64_t max_connections = 1024;       // open connections in all
  int64_t max_connections_per_ip = 128; // per address: not yet a request being handled
  int64_t max_handshakes_per_ip = 8;    // per address: TLS handshakes at once
  int64_t max_untrusted = 8;            // past the handshake, certificate not in the trusted map
  int64_t request_head_timeout = 10;    // seconds for the request line and headers
  int64_t request_body_timeout = 10;    // seconds for the body, after the headers
  // Ours: metrics_bind, `[address:]port` of the plain-HTTP GET /metrics listener; unset, no
  // listener. The address is 127.0.0.1 unless written (an IPv4 or a bracketed IPv6 literal).
  std::optional<std::string> metrics_bind_ip;
  int metrics_port = 0;
  std::map<std::string, std::string> tags;
  std::map<std::string, Profile> profiles;
};

struct MetricsBind {
  std::string ip;
  int port;
};
// metrics_bind's value: "9443", "127.0.0.1:9443", "[::1]:9443"; a port 1-65535. Errors name
// the key.
Result<MetricsBind> parse_metrics_bind(std::string_view value);

struct AgentConfigLoad {
  AgentConfig config;
  // For `config-warn KEY MSG`: malformed rate limits (defaults kept) and invalid numbers.
  std::vector<ConfigWarning> warnings;
};

// Builds the typed config from a parsed file. Fatal errors, in the order checked:
// "Missing required config key '<k>'" (port, cert, key, ca), then an invalid port, invalid
// profiles, and "auth_hook '<p>' is not executable". Integer keys that do not parse keep their
// default and add a warning naming the key.
Result<AgentConfigLoad> make_agent_config(const SectionedConfig& ini, const std::string& path);

Result<AgentConfigLoad> load_agent_config(const std::string& path);

// What request-pairing needs from agent.conf (agent-and-wire §5.4 step 4): the serve port it
// reports to the dispatcher and the files it writes. Read leniently, unlike load_agent_config:
// a file that cannot be read or parsed leaves every default, each key stands on its own (a
// port other than 1-65535 keeps the default) and nothing else is checked. The paths honour the
// config, which the original ignores (§2.1 QUIRK, docs/COMPATIBILITY.md).
struct AgentPairingFiles {
  int port;                // default paths::kAgentPort
  std::string cert;        // default paths::agent_cert()
  std::string key;         // default paths::agent_key()
  std::string ca;          // default paths::agent_ca()
  std::string trusted_map; // trusted_dispatchers_path, default paths::agent_trusted_map()
};
AgentPairingFiles load_agent_pairing_files(const std::string& path);

} // namespace cx::conf
