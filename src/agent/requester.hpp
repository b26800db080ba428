// The agent side of pairing: `ctrl-exec-agent request-pairing` (agent-and-wire §5.4).
#pragma once

#include <optional>
#include <string>

#include "pki/key.hpp"

namespace cx::agent {

// `--key-type rsa` without a size, and the default key: RSA-2048.
inline constexpr unsigned kDefaultAgentRsaBits = 2048;

struct RequestPairingOptions {
  std::string config_path;              // agent.conf (read leniently for `port`)
  std::string dispatcher;               // --dispatcher, required
  int port = 7444;                      // --port: the dispatcher's pairing port
  std::optional<std::string> lookup_by; // --lookup-by ip|hostname
  bool background = false;              // --background
  int timeout = 30;                     // --timeout (background only, at most 600)
  // --key-type: the agent's new key. RSA-2048 by default: the original's dispatcher signs no
  // CSR under 2048 bits (so no EC key), and of the keys it signs RSA-2048 costs both sides
  // the least per handshake (README: key combinations; docs/COMPATIBILITY.md).
  pki::KeySpec key{pki::KeyType::rsa, kDefaultAgentRsaBits};
};

// The hidden flag of the ctrl-exec-pairing applet that runs the detached half of
// --background (re-executed, never typed by a user).
inline constexpr const char* kRequestChildFlag = "--request-child";

// Runs the whole request-pairing mode and returns the exit status (interactive: 0 or a fatal
// error; background parent: 0; background child: 0, kExitPairingTimeout or kExitPairingDenied).
int request_pairing(const RequestPairingOptions& opts);

} // namespace cx::agent
