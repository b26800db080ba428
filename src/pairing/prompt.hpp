// The interactive pairing prompt (dispatcher-and-api §8, DOCKER.md step 4): what the operator
// sees for pending requests, and how their answers are read. Pure text in and out, so every
// case is a unit-test row.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "state/pairing_queue.hpp"

namespace cx::pairing {

struct PromptCommand {
  enum class Kind { empty, quit, list, approve, deny, skip, unknown };
  Kind kind = Kind::empty;
  int position = 0; // a<N>/d<N>: N (1-based); 0 for bare a/d
  std::string text; // the trimmed input, for "Unknown command"
};
// quit/q, list/l, a/A, d/D, a<N>, d<N>, s/skip; surrounding space is ignored.
PromptCommand parse_prompt_command(std::string_view line);

// The prompt for the current queue: one request in full, several as a numbered list, or none.
std::string format_prompt(const std::vector<state::PairingRequest>& pending);
// The full block for one request, ending with "Accept, Deny, or Skip? [a/d/s]: ".
std::string format_request_prompt(const state::PairingRequest& r);

std::string unknown_command_text(std::string_view cmd);

} // namespace cx::pairing
