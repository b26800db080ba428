// What pairing mode runs besides pairing: the dispatcher engine's cert-check loop. Shared by the
// two applets that start pairing mode (ced pairing-mode and ctrl-exec-pairing).
#pragma once

#include "engine/rotation.hpp"
#include "pairing/mode.hpp"

inline cx::pairing::PairingModeHooks pairing_hooks() {
  cx::pairing::PairingModeHooks h;
  h.cert_check = [](const cx::conf::DispatcherConfig& c) {
    cx::pairing::PeriodicTask t;
    t.first_ms = 5000;
    t.interval_ms = static_cast<uint64_t>(std::max<int64_t>(1, c.cert_check_interval)) * 1000;
    t.run = cx::engine::cert_check_runner(c);
    return std::optional<cx::pairing::PeriodicTask>(std::move(t));
  };
  return h;
}
