// The scripts.conf allowlist (spec agent-and-wire §2.3): script name -> absolute path and
// profile, plus the checks that tie it to the profiles and to `script_dirs`.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.hpp"
#include "conf/agent.hpp"

namespace cx::conf {

struct ScriptEntry {
  std::string path;                // absolute
  std::string profile = "default"; // from a `profile=<name>` annotation
  bool operator==(const ScriptEntry&) const = default;
};

using Allowlist = std::map<std::string, ScriptEntry>;

struct AllowlistLoad {
  Allowlist scripts;
  // Free-text warnings for skipped lines; the agent prints them on stderr, not to syslog.
  std::vector<std::string> warnings;
};

// Comment and blank rules as in agent.conf. An entry is `^\s*([\w-]+)\s*=\s*(.+?)\s*$`; its
// value splits on whitespace into tokens, where `^([a-z_]+)=(.*)$` is an annotation (only
// `profile=` means something; position does not matter) and anything else is a path. An
// entry needs exactly one path token, absolute; otherwise it is skipped with a warning, as
// are malformed lines and an empty `profile=` (the safer choice: no guessing a profile).
// A later entry with the same name replaces an earlier one.
AllowlistLoad parse_allowlist(std::string_view text, const std::string& path);

// Failure to read: "Cannot open allowlist '<path>': <strerror>".
Result<AllowlistLoad> load_allowlist(const std::string& path);

// (script, profile) for every entry whose profile is not defined, sorted by script name.
std::vector<std::pair<std::string, std::string>>
undefined_profiles(const Allowlist& scripts, const std::map<std::string, Profile>& profiles);

// "script(s) reference an undefined profile: <name> -> <profile>, ..." ("" when none).
std::string undefined_profiles_message(const Allowlist& scripts,
                                       const std::map<std::string, Profile>& profiles);

// True when `path` is one of `dirs` or lies under one. Both sides are canonicalised with
// realpath(3) when they exist (so a symlink out of a dir is caught); a path that does not
// exist is taken literally after resolving its parent directory, and rejected if it is not
// absolute or has a ".." component. No dirs means no restriction (true).
bool in_script_dirs(const std::string& path, const std::vector<std::string>& dirs);

// Removes the entries outside `dirs` (the original filters only at execution time; we filter
// at load as well) and returns one warning per removed entry.
std::vector<std::string> drop_outside_script_dirs(Allowlist& scripts,
                                                  const std::vector<std::string>& dirs);

} // namespace cx::conf
