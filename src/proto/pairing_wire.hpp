// The messages of the pairing exchange on port 7444 (agent-and-wire §5.2, dispatcher-and-api
// §8): the agent's request, the dispatcher's validation of it, and the two responses. Both the
// listener and request-pairing use these, so the wire is written in one place.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::proto {

// Error reasons of the first response, exactly as the original sends them.
inline constexpr std::string_view kPairTooLarge = "request too large";
inline constexpr std::string_view kPairInvalidRequest = "invalid request";
inline constexpr std::string_view kPairInvalidHostname = "invalid hostname";
inline constexpr std::string_view kPairQueueFull = "pairing queue full";
// Ours: the one answer an address over the rate limit gets per block (docs/COMPATIBILITY.md).
inline constexpr std::string_view kPairRateLimited =
    "rate limited - too many connections from this address; try again later";
// Reasons of a second response that denies.
inline constexpr std::string_view kPairRejected = "rejected by operator";
inline constexpr std::string_view kPairTimeout = "approval timeout";

// The largest request body the listener reads (checked against Content-Length first).
inline constexpr size_t kMaxPairBody = 65536;

struct PairRequest {
  std::string hostname;
  std::string csr;
  std::optional<std::string> nonce;     // 32 lowercase hex from our agent; echoed back
  std::optional<std::string> lookup_by; // "ip" | "hostname"
  std::optional<int> port;              // the agent's serve port, 1..65535
  std::optional<std::string> ip;        // the agent's own address on the connection
};

// The agent's request body: {"hostname","csr","nonce","lookup_by","port","ip"}, the optional
// members only when set.
std::string pair_request_json(const PairRequest& req);

// The dispatcher's reading of a request body (§8 steps 3-5). On refusal, `reason` is the
// error to send back (kPairInvalidRequest or kPairInvalidHostname) and `request` is empty.
// Optional members that are not valid are dropped, as the original does: lookup_by other than
// ip/hostname, a port outside 1..65535, an ip that is not an IPv4/IPv6 literal, a nonce that is
// not a string.
struct PairRequestParse {
  std::optional<PairRequest> request;
  std::string_view reason;
};
PairRequestParse parse_pair_request(std::string_view body);

// Response bodies.
std::string pair_pending_json(std::string_view reqid); // {"status":"pending","reqid":...}
std::string pair_error_json(std::string_view reason);  // {"status":"error","reason":...}
std::string pair_denied_json(std::string_view reason); // {"status":"denied","reason":...}
struct PairApproval {
  std::string cert;                 // the agent's new certificate, PEM
  std::string ca;                   // the CA certificate, PEM
  std::optional<std::string> nonce; // echoed; null when the agent sent none
  std::string dispatcher_serial;    // canon form of the served cert's serial
  std::string dispatcher_id;
};
std::string pair_approved_json(const PairApproval& a);

// What the agent reads from either response. Members that are absent are empty.
struct PairResponse {
  std::string status; // "pending", "approved", "denied", "error" or whatever the peer sent
  std::string reqid;
  std::string reason;
  std::string cert, ca;
  std::optional<std::string> nonce;
  std::string dispatcher_serial;
  std::string dispatcher_id;
};
// Errors: "invalid pairing response: ..." when the body is not a JSON object.
Result<PairResponse> parse_pair_response(std::string_view body);

// The agent's acceptance of the second response (§5.2 step 5): status "approved" and the nonce
// it sent, else an error: the peer's reason (default "denied"), or "nonce mismatch in pairing
// result". An approval without a certificate or CA is refused too.
Status check_pair_result(const PairResponse& r, std::string_view sent_nonce);

} // namespace cx::proto
