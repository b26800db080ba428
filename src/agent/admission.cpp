// The agent's admission pieces; see admission.hpp.
#include "agent/admission.hpp"

namespace cx::agent {

http::ServerTuning server_tuning(const conf::AgentConfig& config) {
  http::ServerTuning t;
  t.admission.max_connections = static_cast<size_t>(config.max_connections);
  t.admission.max_pending_per_ip = static_cast<size_t>(config.max_connections_per_ip);
  t.admission.max_handshakes_per_ip = static_cast<size_t>(config.max_handshakes_per_ip);
  t.head_timeout_ms = static_cast<uint64_t>(config.request_head_timeout) * 1000;
  t.body_timeout_ms = static_cast<uint64_t>(config.request_body_timeout) * 1000;
  return t;
}

std::optional<uint64_t>
UntrustedPool::make_room(size_t capacity, const std::function<bool(uint64_t id)>& sheddable) const {
  if (ids_.size() < capacity) return 0;
  for (uint64_t id : ids_)
    if (sheddable(id)) return id;
  return std::nullopt;
}

} // namespace cx::agent
