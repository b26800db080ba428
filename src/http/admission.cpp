// Admission by source address; see admission.hpp.
#include "http/admission.hpp"

#include <algorithm>

#include "base/status.hpp"

namespace cx::http {

Admission admit_connection(const AdmissionLimits& limits, size_t open, const AddressCount& count,
                           bool tls) {
  Admission a;
  if (limits.max_pending_per_ip && count.pending() >= limits.max_pending_per_ip) {
    a.verdict = Admission::Verdict::refuse_address;
    return a;
  }
  a.queue = tls && limits.max_handshakes_per_ip &&
            count[Phase::handshake] >= limits.max_handshakes_per_ip;
  a.shed = limits.max_connections && open >= limits.max_connections;
  return a;
}

std::string_view refusal_reason(Admission::Verdict v) {
  switch (v) {
  case Admission::Verdict::refuse_address:
    return "address";
  case Admission::Verdict::refuse_full:
    return "full";
  default:
    return "";
  }
}

void AddressBook::add(const std::string& ip, Phase p) {
  ++table_[ip].by_phase[static_cast<size_t>(p)];
}

void AddressBook::move(const std::string& ip, Phase from, Phase to) {
  if (from == to) return;
  auto it = table_.find(ip);
  CX_CHECK(it != table_.end() && it->second[from] > 0);
  --it->second.by_phase[static_cast<size_t>(from)];
  ++it->second.by_phase[static_cast<size_t>(to)];
}

void AddressBook::remove(const std::string& ip, Phase p) {
  auto it = table_.find(ip);
  CX_CHECK(it != table_.end() && it->second[p] > 0);
  --it->second.by_phase[static_cast<size_t>(p)];
  if (it->second.total() == 0) table_.erase(it);
}

AddressCount AddressBook::count(const std::string& ip) const {
  auto it = table_.find(ip);
  return it == table_.end() ? AddressCount{} : it->second;
}

uint64_t stage_budget_ms(uint64_t stage_limit_ms, uint64_t request_limit_ms,
                         uint64_t request_elapsed_ms) {
  if (request_limit_ms == 0) return stage_limit_ms;
  uint64_t left =
      request_elapsed_ms >= request_limit_ms ? 1 : request_limit_ms - request_elapsed_ms;
  return stage_limit_ms == 0 ? left : std::min(stage_limit_ms, left);
}

void EventTally::note(std::string_view kind, std::string_view reason, const std::string& peer) {
  auto key = std::make_pair(std::string(kind), std::string(reason));
  Entry& e = pending_[key];
  if (e.count == 0) {
    e.kind = key.first;
    e.reason = key.second;
  }
  e.peer = peer;
  ++e.count;
}

std::vector<EventTally::Entry> EventTally::take() {
  std::vector<Entry> out;
  out.reserve(pending_.size());
  for (auto& [key, e] : pending_)
    out.push_back(std::move(e));
  pending_.clear();
  return out;
}

} // namespace cx::http
