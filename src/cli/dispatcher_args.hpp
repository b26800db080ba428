// The dispatcher CLI's parsed command line (ctrl-exec-dispatcher / ced), as the applet hands it
// to the command implementations in src/engine and src/pairing (dispatcher-and-api §4.1), and
// the type of those commands.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.hpp"

namespace cx::cli {

struct DispatcherArgs {
  std::string mode;
  std::vector<std::string> words;       // positional arguments after the mode, before `--`
  bool has_dashdash = false;            // a bare `--` was given
  std::vector<std::string> script_args; // everything after the first `--`, untouched

  std::string config_path = paths::dispatcher_config();
  bool json = false;
  bool async = false;
  bool follow = false;           // run: live output (ours)
  bool force = false;            // setup-ca: replace an existing CA
  bool apply = false;            // state import: write (ours; a dry run without it)
  std::optional<int> port;       // run/ping/status/wait/maintain default agent port;
                                 // pairing-mode listen port
  std::optional<int> agent_port; // approve, edit-agent
  std::optional<int> timeout;    // wait (default 300), pairing-mode (1-600)
  std::optional<std::string> username_opt, token_opt;
  std::optional<std::string> lookup_by, ip, rename;
  std::optional<std::string> tags; // list-agents filter; run/ping selector (ours)
  // run/ping: a batched rollout (ours): --batch N|N%, --batch-wait S, --max-failures K|K%
  std::optional<std::string> batch, batch_wait, max_failures;
  std::optional<std::string> key_type; // setup-ca / setup-ctrl-exec: "ec" (default) or "rsa"

  // --username, else $USER, else "".
  std::string username() const {
    if (username_opt) return *username_opt;
    const char* u = std::getenv("USER");
    return u ? u : "";
  }
  // --token, else $ENVEXEC_TOKEN, else "".
  std::string token() const {
    if (token_opt) return *token_opt;
    const char* t = std::getenv("ENVEXEC_TOKEN");
    return t ? t : "";
  }
};

// A dispatcher mode: takes the parsed command line, prints what the original prints and
// returns the exit status (base/exit_codes.hpp). The modules declare their modes with it, e.g.
// `cli::Command cmd_run;`, and the applet's mode table holds pointers to them.
using Command = int(const DispatcherArgs& args);

} // namespace cx::cli
