// The sectioned INI form of agent.conf (spec agent-and-wire §2.2): top-level keys, `[tags]`,
// `[profile <name>]`, with the original's exact line grammar. Every error names the file and
// the line number.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "conf/common.hpp"

namespace cx::conf {

struct SectionedConfig {
  KeyValues top;  // keys before the first section header
  KeyValues tags; // [tags]
  // [profile <name>] -> its keys. A header alone defines the profile, even with no keys;
  // repeated sections with the same name merge (later keys win).
  std::map<std::string, KeyValues, std::less<>> profiles;
};

// Line grammar:
//  * blank lines and lines whose first non-space character is '#' are ignored (whole-line
//    comments only; a '#' after a value is part of the value);
//  * a header `^\s*\[\s*(\w+)(\s+([\w.-]+))?\s*\]\s*$` starts a section; its name is
//    lower-cased. Keys in sections other than `tags` and `profile` are ignored.
//    `[profile]` without a name is fatal;
//  * a key line `^\s*(\w+[\w-]*)\s*=\s*(.+?)\s*$` (see capture_value()); later duplicates win;
//  * anything else is fatal: "Malformed config line in '<path>' at line <n>: <line>". The
//    original gives no line number; we add it on purpose.
Result<SectionedConfig> parse_sectioned(std::string_view text, const std::string& path);

// Reads and parses a file. Failure to read: "Cannot open config '<path>': <strerror>".
Result<SectionedConfig> load_sectioned(const std::string& path);

} // namespace cx::conf
