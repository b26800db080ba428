// The dispatcher's rotation state file (dispatcher-and-api §3.5): rotation.json, mode 0640.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.hpp"

namespace cx::state {

struct RotationState {
  std::string current_serial;                 // canonical lowercase hex
  std::optional<std::string> previous_serial; // "" when there was none; absent once retired
  std::string rotated_at;                     // ISO-8601Z
  std::string overlap_expires;                // ISO-8601Z
  int64_t overlap_days = 30;
  std::optional<std::string> previous_retired; // ISO-8601Z, set when the previous is retired
  std::vector<std::pair<std::string, std::string>> extra; // unknown members, JSON text

  bool operator==(const RotationState&) const = default;
};

// {current_serial, previous_serial?, rotated_at, overlap_expires, overlap_days,
//  previous_retired?, ...extra}
std::string rotation_json(const RotationState& s);
// Errors name what is wrong ("not a JSON object", "current_serial must be a string", ...).
Result<RotationState> parse_rotation(std::string_view text);

// nullopt when the file does not exist; an error when it cannot be read or parsed (the caller
// logs rotation-state-corrupt and treats the state as absent).
Result<std::optional<RotationState>> load_rotation(const std::string& path);
// Atomic write, mode 0640; parent directories are created.
Status save_rotation(const std::string& path, const RotationState& s);

} // namespace cx::state
