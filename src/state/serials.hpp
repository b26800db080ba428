// Certificate serials shared by dispatchers (issue 17): with the shared store, every serial a
// dispatcher is about to issue is claimed first as the key ca/issued/<hex>, created only if
// absent, and ca/serial (the last issued, as ca.serial holds it) advances by compare-and-swap.
// So two dispatchers never issue one serial, even if their random draws met. With the files,
// every claim succeeds: 128 random bits are unique enough on one host, as before.
#pragma once

#include <string>

#include "base/status.hpp"

namespace cx::state {

Result<bool> claim_serial(const std::string& serial_hex);

} // namespace cx::state
