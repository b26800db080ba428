// The agent's small modes (agent-and-wire §1.2-1.3), each returning its exit status and
// printing exactly what the original prints: pairing-status, self-check, self-ping, and the
// unlisted promote-cert, cert-staged and paired. `serve` is in server.hpp.
#pragma once

#include "agent/state.hpp"

namespace cx::agent {

int pairing_status(const Paths& paths);
int self_check(const Paths& paths);
int self_ping(const Paths& paths);
int promote_cert(const Paths& paths);
int cert_staged(const Paths& paths);
int paired(const Paths& paths);

} // namespace cx::agent
