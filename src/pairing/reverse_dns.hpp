// The reverse-DNS check of a pairing request's source address (dispatcher-and-api §3.2): the
// PTR name, and whether that name resolves back to the same address. Runs on libuv's thread
// pool with a deadline, so a slow resolver never stalls the listener.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "event/loop.hpp"

namespace cx::pairing {

struct ReverseDns {
  std::string name;       // "" when there is no PTR name (or the deadline passed)
  bool confirmed = false; // `name` forward-resolves to the same address
};

// Blocking form: for tests and the thread pool.
ReverseDns lookup_reverse_dns_blocking(const std::string& ip);

// Calls `done` on the loop exactly once: with the answer, or with an empty one after
// `timeout_ms` (the original's 2 s alarm).
void lookup_reverse_dns(event::Loop& loop, const std::string& ip, uint64_t timeout_ms,
                        std::function<void(ReverseDns)> done);

} // namespace cx::pairing
