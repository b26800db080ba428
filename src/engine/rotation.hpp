// The dispatcher cert's lifecycle (dispatcher-and-api §9, agent-and-wire §6.6): the expiry
// check, rotation in place, the serial broadcast to agents, stale expiry and the retirement of
// the previous serial after the overlap window.
//
// Deliberate difference (docs/COMPATIBILITY.md): the original overwrote its cert before
// broadcasting, so it announced the new serial with the new, not yet trusted identity and the
// agents refused it. We keep the previous cert and key beside the current ones
// (`<cert>.previous`, `<key>.previous`) until the previous serial is retired, and announce
// `add` with that still-trusted identity; `remove` goes out with the new one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "conf/dispatcher.hpp"
#include "engine/engine.hpp"

namespace cx::engine {

std::string previous_cert_path(const conf::DispatcherConfig& c);
std::string previous_key_path(const conf::DispatcherConfig& c);

struct RotationOutcome {
  std::string serial;     // the new serial (canonical lowercase hex)
  std::string old_serial; // "" when there was no readable cert before
  std::string overlap_expires;
  size_t agents_pending = 0;
};

// Days left on the dispatcher cert, int((notAfter - now) / 86400); an error if it cannot be
// read.
Result<int64_t> cert_days_left(const std::string& cert_path, int64_t now);

// Regenerates the dispatcher key and cert in place (the key type of the current key; CN
// ctrl-exec-dispatcher; rotation_cert_days), keeps the previous pair as *.previous, writes
// rotation.json and marks every registered agent pending. Logs cert-rotated, or
// cert-rotation-fail and returns why: "cert generation failed: <why>" or the step that failed.
// Refused while the previous rotation's serial is not retired yet, unless `force`. Each step
// is ordered so that a failure leaves a working identity and state behind: the previous
// identity is kept, agents are marked pending, rotation.json is written, and only then are the
// new key and cert renamed into place (rotation.json is put back if that fails).
Result<RotationOutcome> rotate_cert(const conf::DispatcherConfig& c, int64_t now, bool force);

// cert-check, then rotate when days left <= cert_renewal_days. nullopt: not due. A cert that
// cannot be read is an error (the callers log it as maintain PHASE=rotate / cert-check-warn).
Result<std::optional<RotationOutcome>> check_and_rotate(const conf::DispatcherConfig& c,
                                                        int64_t now);

struct BroadcastResult {
  std::string hostname;
  bool ok = false;
  std::string error;
};
using BroadcastFn = std::function<void(std::vector<BroadcastResult>)>;

// Announces rotation.json's current serial (`add`) to every agent whose serial_status is
// pending or unknown; confirmed agents become current. Agents are addressed as every other
// exchange addresses them (lookup_by and port honoured; the original used hostname:7443).
// `done` gets one entry per agent contacted ([] when there is no rotation state).
void broadcast_serial(Engine& engine, BroadcastFn done);

// After overlap_expires: every pending agent becomes stale. Returns how many changed.
size_t expire_stale_agents(const conf::DispatcherConfig& c, int64_t now);

// After overlap_expires, once: `remove` the previous serial from every current agent, then
// drop previous_serial from rotation.json (adding previous_retired) and delete the *.previous
// files, whatever the agents answered. `done` runs when finished (at once when not due).
void retire_previous_serial(Engine& engine, std::function<void()> done);

// One pass of pairing-mode's cert-check loop (§9.1 step 6): expire stale agents, retire the
// previous serial, check and rotate, then broadcast when rotated or when agents are pending.
void run_cert_check(Engine& engine, std::function<void()> done);

} // namespace cx::engine

namespace cx::engine {

// pairing-mode's cert-check work (§4.8, §9.1 step 6) as a function of the loop to run on: each
// call runs one run_cert_check() pass with an engine of its own (created on the first call),
// and a call that comes while the previous pass is still running does nothing.
std::function<void(event::Loop&)> cert_check_runner(const conf::DispatcherConfig& c);

} // namespace cx::engine
