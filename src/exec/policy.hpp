// The executor's own reading of agent.conf and scripts.conf, and the decision it derives from
// them for a script name (agent-and-wire §4.8). The agent's message names only the script; the
// path and the profile always come from here, never from the message.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "conf/agent.hpp"
#include "conf/allowlist.hpp"

namespace cx::exec {

// Identifies a file's content cheaply: a change of any field means "read it again".
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = -1;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const std::string& path); // size -1 when the file cannot be stat'ed

struct Policy {
  std::string agent_conf_path, scripts_conf_path;
  conf::AgentConfig config;
  conf::Allowlist scripts;
  FileStamp agent_stamp, scripts_stamp;
};

// Loads both files with the agent's own parsers, so both halves decide alike. Errors name the
// file: "Cannot open allowlist '<path>': ...", "Malformed config line in '<path>' ...".
Result<std::shared_ptr<const Policy>> load_policy(const std::string& agent_conf,
                                                  const std::string& scripts_conf);

struct Decision {
  enum class Kind { ok, not_allowlisted, not_in_script_dirs, undefined_profile };
  Kind kind = Kind::not_allowlisted;
  std::string path;         // ok: the allowlisted path
  std::string profile_name; // ok: the profile it runs under
  conf::Profile profile;    // ok: that profile
};

// Allowlist entry, then script_dirs (checked now, against the file system as it is), then the
// profile, which must be defined: there is no implicit "default" (0.12.2 and later).
Decision decide(const Policy& policy, const std::string& script);

// The `resolve` mode's line, as the original's:
// "OK path=<p>|profile=<n>|run_as=<u>|nnp=0|1|caps=A,B|writable=/x:/y", or
// "DENY not-allowlisted|not-in-script-dirs|undefined-profile".
std::string decision_line(const Decision& d);

// The directories a script must never change, bind-mounted read-only in its namespace: the
// agent's configuration and state directories (under CTRL_EXEC_ROOT), and those that hold
// agent.conf, scripts.conf, the trusted-dispatcher map and the async records. Those that
// exist, each once, in this order.
std::vector<std::string> protected_dirs(const Policy& policy);

} // namespace cx::exec
