// The flat `key = value` form of ctrl-exec.conf, parsed with exactly the original's rules
// (spec dispatcher-and-api §2.1), quirks included.
#pragma once

#include <string>
#include <string_view>

#include "base/status.hpp"
#include "conf/common.hpp"

namespace cx::conf {

using FlatConfig = KeyValues;

// Line rules, in order:
//  * a line whose first character is whitespace is ignored (QUIRK kept: an indented
//    `key = v` is silently dropped);
//  * a line starting with '#' is a comment (only whole-line comments exist: an inline `# ...`
//    is part of the value);
//  * `^\s*(\w+)\s*=\s*(.+?)\s*$` sets key to the trimmed value (see capture_value());
//  * any other line is silently ignored. A later duplicate wins; unknown keys are kept.
FlatConfig parse_flat(std::string_view text);

// Reads and parses a file without checking required keys (the lenient load some commands
// use). Failure: "Cannot open config '<path>': <strerror>".
Result<FlatConfig> load_flat(const std::string& path);

// As load_flat, then check_required_tls_keys.
Result<FlatConfig> load_flat_required(const std::string& path);

// `cert`, `key` and `ca` must be present and Perl-true (the value "0" counts as missing).
// The first one missing gives "Missing '<k>' in <path>".
Status check_required_tls_keys(const FlatConfig& conf, const std::string& path);

} // namespace cx::conf
