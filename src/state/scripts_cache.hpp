// The scripts each agent last reported (ours): `/var/lib/ctrl-exec/scripts.cache`, written
// when `ping`, `maintain` or the API's `/discovery` asks agents for their capabilities, and
// read by the shell completion to offer script names. One line per agent, sorted by name:
//   <agent name> <script> <script> ...
// Names and scripts are the registry's and the allowlist's characters only, so the file needs
// no quoting. It is a cache: a lost update costs a completion, never a run.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::state {

using ScriptsByAgent = std::map<std::string, std::vector<std::string>>;

// The cache's text; entries with an invalid agent name are left out, as are invalid scripts.
std::string scripts_cache_text(const ScriptsByAgent& scripts);
// Reads the text back; lines that do not parse are skipped.
ScriptsByAgent parse_scripts_cache(std::string_view text);

// Replaces the entries of the agents in `update` (an empty list is kept: the agent has no
// scripts) and keeps the others; written atomically, mode 0644, and only when that changes the
// file. A missing or unreadable file starts empty.
Status update_scripts_cache(const std::string& path, const ScriptsByAgent& update);

} // namespace cx::state
