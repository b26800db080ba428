// The dispatcher CLI's parsed command line (ctrl-exec-dispatcher / ced), as the applet hands it
// to the command implementations in src/engine and src/pairing (dispatcher-and-api §4.1).
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "base/paths.hpp"

namespace cx::conf {

struct DispatcherArgs {
  std::string mode;
  std::vector<std::string> words;       // positional arguments after the mode, before `--`
  bool has_dashdash = false;            // a bare `--` was given
  std::vector<std::string> script_args; // everything after the first `--`, untouched

  std::string config_path = paths::dispatcher_config();
  bool json = false;
  bool async = false;
  bool force = false;            // setup-ca: replace an existing CA
  std::optional<int> port;       // run/ping/status/wait/maintain default agent port;
                                 // pairing-mode listen port
  std::optional<int> agent_port; // approve, edit-agent
  std::optional<int> timeout;    // wait (default 300), pairing-mode (1-600)
  std::optional<std::string> username_opt, token_opt;
  std::optional<std::string> lookup_by, ip, rename, tags;
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

// Exit status of a fatal error (the original's `die`). Usage errors use kExitUsage.
inline constexpr int kExitFatal = 255;
inline constexpr int kExitUsage = 2;

} // namespace cx::conf
