// `ced pairing-mode [start|stop]` and the ctrl-exec-pairing applet (dispatcher-and-api §4.8):
// the foreground listener with its interactive prompt, the background session (our own
// binary re-executed detached, with a pidfile), and stopping it.
#pragma once

#include <functional>
#include <optional>

#include "cli/dispatcher_args.hpp"
#include "conf/dispatcher.hpp"
#include "pairing/listener.hpp"

namespace cx::pairing {

struct PairingModeHooks {
  // The cert-check work to run while pairing mode is up (see PeriodicTask), built from the
  // loaded config. The dispatcher engine provides it; without it pairing mode only pairs.
  std::function<std::optional<PeriodicTask>(const conf::DispatcherConfig&)> cert_check;
};

// The hidden flag the background session is re-executed with (ctrl-exec-pairing applet).
inline constexpr const char* kDaemonChildFlag = "--daemon-child";

// pairing-mode with its mode word in args.words (none, "start" or "stop"); returns the exit
// status. `daemon_child` is set only in the re-executed background session.
int run_pairing_mode(const cli::DispatcherArgs& args, const PairingModeHooks& hooks,
                     bool daemon_child = false);

// The effective timeout (--timeout, else pairing_timeout, else 600) or the error to print:
// "Error: --timeout must be an integer number of seconds." / "... between 1 and 600 seconds."
struct TimeoutChoice {
  int64_t seconds = 600;
  std::string error;
};
TimeoutChoice choose_pairing_timeout(std::optional<int> flag, const conf::DispatcherConfig& config);

} // namespace cx::pairing
