// What an approved pairing leaves on the agent (agent-and-wire §5.4 step 9): the trusted-map
// entry, then the key, the certificate and the CA, each written atomically.
#pragma once

#include <string>

#include "base/status.hpp"
#include "conf/agent.hpp"
#include "proto/pairing_wire.hpp"

namespace cx::agent {

// Refuses a certificate that does not carry `key_pem`'s public key, and stores nothing then.
// The map entry goes first: a cert without a trusted dispatcher would refuse everything and is
// easy to see; the reverse cannot happen then.
Status store_pairing(const conf::AgentPairingFiles& files, const std::string& key_pem,
                     const proto::PairResponse& approval);

} // namespace cx::agent
