// Admission of connections by source address, decided at accept, before any byte is read and
// before any crypto: a cap on open connections in all, a cap per address on connections that
// are not (yet) a request being handled, and per address a number of TLS handshakes in
// progress beyond which the next ones wait their turn. The rules and the per-address counts
// are kept here, free of sockets, so that they are unit rows; http::Server applies the
// decisions (and picks the connection to shed).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cx::http {

// How far a connection has come. Only `handling` is work: the other phases cost a socket and a
// buffer, and are what a slow or flooding client holds.
enum class Phase : uint8_t {
  queued,    // accepted; its TLS handshake waits for its address's turn (nothing read yet)
  handshake, // the TLS handshake is in progress
  waiting,   // waiting for a request, receiving one, or idle between keep-alive requests
  handling,  // a complete request is with the handler
  closing,   // answered (or refused): flushing, then lingering until the peer closes
};
inline constexpr size_t kPhases = 5;

// 0 means no cap, for each field.
struct AdmissionLimits {
  // Open connections in all. At the cap a new connection takes the place of the oldest one that
  // is not handling a request; only when there is none is it refused.
  size_t max_connections = 0;
  // Per address: connections not handling a request (queued, handshake, waiting, closing).
  size_t max_pending_per_ip = 0;
  // Per address: TLS handshakes in progress at once; the next ones are queued until one ends
  // (still within the handshake deadline, which runs from accept). One address then never has
  // more than this many handshakes' worth of work in any turn of the loop.
  size_t max_handshakes_per_ip = 0;
};

// What one address holds, by phase.
struct AddressCount {
  std::array<size_t, kPhases> by_phase{};
  size_t operator[](Phase p) const { return by_phase[static_cast<size_t>(p)]; }
  size_t total() const {
    size_t n = 0;
    for (size_t c : by_phase)
      n += c;
    return n;
  }
  // Everything but requests being handled.
  size_t pending() const { return total() - (*this)[Phase::handling]; }
};

struct Admission {
  enum class Verdict : uint8_t {
    admit,
    refuse_address, // the address holds max_pending_per_ip connections already
    refuse_full,    // (from the server) full, and every connection is handling a request
  };
  Verdict verdict = Verdict::admit;
  bool shed = false;  // the server is full: drop the oldest connection not handling a request
  bool queue = false; // the address has its handshakes in progress: this one waits its turn
  bool operator==(const Admission&) const = default;
};

// The decision for a new connection from an address that holds `count`, with `open`
// connections in all; `tls` says whether it will handshake. The address's own cap comes
// first: an address over its share never makes others' connections go.
Admission admit_connection(const AdmissionLimits& limits, size_t open, const AddressCount& count,
                           bool tls);

// The word for a refusal in log lines: "address", "full"; "" for admit.
std::string_view refusal_reason(Admission::Verdict v);

// Connections per source address and phase. Addresses with nothing open are forgotten, so the
// table never holds more entries than there are open connections.
class AddressBook {
public:
  void add(const std::string& ip, Phase p);
  void move(const std::string& ip, Phase from, Phase to);
  void remove(const std::string& ip, Phase p);
  AddressCount count(const std::string& ip) const;
  size_t addresses() const { return table_.size(); }

private:
  std::unordered_map<std::string, AddressCount> table_;
};

// The time left for the current stage of receiving a request: the stage's own limit, capped by
// what is left of the whole request's, each counted as a total from its start (a client that
// trickles a byte now and then gains nothing). 0 means no limit at all; once the request's
// limit has passed it is 1, so that a timer fires at once.
uint64_t stage_budget_ms(uint64_t stage_limit_ms, uint64_t request_limit_ms,
                         uint64_t request_elapsed_ms);

// Crowding events (refusals, sheds, timeouts) counted by kind and reason between reports, so
// that a flood makes one log line a second, not one per connection: take() hands out, for each
// kind and reason seen since the last take(), how many there were and the peer of the latest.
class EventTally {
public:
  struct Entry {
    std::string kind;
    std::string reason;
    std::string peer; // of the latest event
    uint64_t count = 0;
    bool operator==(const Entry&) const = default;
  };
  void note(std::string_view kind, std::string_view reason, const std::string& peer);
  // In (kind, reason) order; the tally is then empty.
  std::vector<Entry> take();
  bool empty() const { return pending_.empty(); }

private:
  std::map<std::pair<std::string, std::string>, Entry, std::less<>> pending_;
};

} // namespace cx::http
