// The pairing queue (dispatcher-and-api §3.2): `<id>.json` requests, `<id>.approved` /
// `<id>.denied` answers. These files are the interface between `approve`/`deny` in another
// process (or a Perl dispatcher's tools) and the listener holding the agent's connection, so
// their names and formats are exactly the original's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::state {

// A queued request older than this with no answer is deleted (stale expiry).
inline constexpr int64_t kPairingStaleSeconds = 600;

struct PairingRequest {
  std::string id;        // 16 lowercase hex
  std::string hostname;  // the agent's reported name (already a valid registry name)
  std::string ip;        // the agent's own IP if it reported a valid literal, else source_ip
  std::string source_ip; // the TCP peer
  std::string csr;
  std::optional<std::string> nonce;
  std::optional<std::string> lookup_by; // "ip" | "hostname" | null
  std::optional<int> port;              // 1..65535 | null
  std::string received;                 // ISO-8601Z
  std::string code;                     // 6 digits
  std::string reverse_dns;              // PTR name of source_ip, "" if none
  int reverse_confirmed = 0;            // 1 if reverse_dns resolves back to source_ip
};

std::string pairing_request_json(const PairingRequest& r);
// Reads a request file's text; `id` fills a missing id. Errors name the file.
Result<PairingRequest> parse_pairing_request(std::string_view text, std::string_view id);

// `^[a-f0-9]+$`: the only ids whose files the queue reads, writes or deletes.
bool is_queue_id(std::string_view id);

enum class PairingAnswer { none, approved, denied };

class PairingQueue {
public:
  // `dir` is paths::pairing_dir() (the original has no key for it).
  explicit PairingQueue(std::string dir);

  const std::string& dir() const { return dir_; }
  std::string request_path(std::string_view id) const;
  std::string approved_path(std::string_view id) const;
  std::string denied_path(std::string_view id) const;

  // Creates the directory (make_state_dir) if needed.
  Status ensure_dir() const;

  // Deletes `<id>.json` files older than kPairingStaleSeconds (by mtime) that have no answer
  // file. Also deletes answer files older than that, with their request: nobody can be waiting
  // for them any more (the listener gives up after 600 s), and the original left them forever.
  // Returns how many requests were removed.
  size_t expire_stale(int64_t now) const;
  // `*.json` files in the directory (run expire_stale first, as the listener does).
  size_t pending_count() const;

  // A fresh 16-hex id with no files yet.
  std::string new_id() const;
  // Writes `<id>.json` (0644, atomically).
  Status add(const PairingRequest& r) const;

  // Every `^[a-f0-9]+\.json$` request that parses, sorted by `received` (then id). Runs the
  // stale expiry first.
  std::vector<PairingRequest> list(int64_t now) const;
  // The request in `<id>.json`; its `id` is always `id`, whatever the file's member says.
  std::optional<PairingRequest> get(std::string_view id) const;

  // Writes `<id>.approved` with the body the listener will send.
  Status write_approved(std::string_view id, std::string_view body) const;
  // Writes `<id>.denied` with the body the listener will send (proto::pair_denied_json) and
  // unlinks `<id>.json`.
  Status write_denied(std::string_view id, std::string_view body) const;

  // The listener's poll: an answer file and its content.
  struct Poll {
    PairingAnswer answer = PairingAnswer::none;
    std::string body;
  };
  Poll poll(std::string_view id) const;
  // After delivery: approved removes `.approved` and `.json`; denied removes `.denied`;
  // none (the timeout) removes `.json`.
  void finish(std::string_view id, PairingAnswer delivered) const;

private:
  std::string dir_;
};

} // namespace cx::state
