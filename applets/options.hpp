// The applets' one command-line front-end: every applet reads its options by the original's
// Getopt::Long rules (dispatcher-and-api §4.1) through CLI11. Long options may be written with
// one or two dashes, as `--opt=value` or `--opt value`, abbreviated to any unique prefix, before
// or after the mode word. Unlike the original, an unknown or ambiguous option is an error
// rather than a stray word (docs/COMPATIBILITY.md).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "applets/applets.hpp"

namespace cx::applets {

struct OptionError {
  enum class Kind {
    name,  // an unknown or ambiguous option
    value, // CLI11 refused the line: a bad value, a missing value, a stray word
    help,  // CLI11's own help flag was given (an applet that keeps it prints app.help())
  };
  Kind kind;
  std::string message;
};

struct CommandLine {
  bool has_dashdash = false;     // a bare `--` was given
  std::vector<std::string> tail; // everything after the first `--`, untouched
};

// Parses `args` (argv without argv[0]) into `app`, whose options and positional words the
// applet has added. Options in the hidden group ("") are for our own re-executed children and
// must be spelled out; prefixes choose among the others. With `take_tail`, a bare `--` ends
// the options and the rest goes to `line->tail`; without it `--` is an unknown option.
// Returns the error, if any.
std::optional<OptionError> parse_command_line(CLI::App& app, const std::vector<std::string>& args,
                                              bool take_tail = false, CommandLine* line = nullptr);

// The long options `app` declares, in declaration order (its positional words left out); an
// option in the hidden group ("") is marked hidden.
std::vector<AppletOption> declared_options(const CLI::App& app);

// "<applet>: <message>" on stderr, then a blank line and `usage` when it is given. Returns
// kExitUsage.
int usage_error(std::string_view applet, const std::string& message, const std::string& usage = {});

// "<applet> <version>" on stdout. Returns kExitOk.
int print_version(std::string_view applet);

} // namespace cx::applets
