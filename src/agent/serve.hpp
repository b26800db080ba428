// `ctrl-exec-agent serve`: start-up apart from serving. The startup order of agent-and-wire
// §1.3 (config, profile warning, trust files, paired check, TLS, listen, `start` log), then
// the loop until SIGTERM/SIGINT.
#pragma once

#include "agent/state.hpp"

namespace cx::agent {

// Returns the exit status: kExitConfig (78) for a configuration error or an unpaired agent,
// kExitFailure when the TLS files cannot be used or the port cannot be bound, 0 after
// SIGTERM/SIGINT.
int serve(const Paths& paths);

} // namespace cx::agent
