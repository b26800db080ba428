// Invariants for the wire messages that cross a trust boundary after the HTTP layer: the 7444
// pairing bodies (the listener's reading of a request, the agent's reading of both responses),
// the executor's unix-socket frames, and the 7443 bodies (the agent's request readers and the
// dispatcher's reply readers). Shared by the libFuzzer targets and by the corpus replay in the
// unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/strings.hpp"
#include "proto/agent_wire.hpp"
#include "proto/executor_frame.hpp"
#include "proto/pairing_wire.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::fuzz {

namespace wire_detail {

inline std::string describe(const proto::PairRequest& r) {
  std::string out = "hostname=" + r.hostname + ";csr=" + r.csr;
  out += ";nonce=" + (r.nonce ? "[" + *r.nonce + "]" : std::string("-"));
  out += ";lookup_by=" + r.lookup_by.value_or("-");
  out += ";port=" + (r.port ? std::to_string(*r.port) : std::string("-"));
  out += ";ip=" + r.ip.value_or("-");
  return out;
}

inline std::string describe(const proto::PairResponse& r) {
  return r.status + ";" + r.reqid + ";" + r.reason + ";" + r.cert + ";" + r.ca + ";" +
         (r.nonce ? "[" + *r.nonce + "]" : std::string("-")) + ";" + r.dispatcher_serial + ";" +
         r.dispatcher_id;
}

// The listener's reading of a request: what it keeps is valid, and the agent's own encoding
// of what it kept reads back to the same request.
inline std::string check_pair_request(std::string_view body) {
  proto::PairRequestParse p = proto::parse_pair_request(body);
  if (!p.request) {
    if (p.reason != proto::kPairInvalidRequest && p.reason != proto::kPairInvalidHostname)
      return "pair request refused without a known reason";
    return "";
  }
  if (!p.reason.empty()) return "pair request accepted with a reason";
  const proto::PairRequest& r = *p.request;
  if (!is_agent_name(r.hostname)) return "pair request: invalid hostname kept: " + r.hostname;
  if (r.csr.empty() || r.csr == "0") return "pair request: Perl-false csr kept";
  if (r.lookup_by && *r.lookup_by != "ip" && *r.lookup_by != "hostname")
    return "pair request: lookup_by kept: " + *r.lookup_by;
  if (r.port && (*r.port < 1 || *r.port > 65535)) return "pair request: port out of range";
  if (r.ip && !looks_like_ipv4(*r.ip) && !looks_like_ipv6(*r.ip))
    return "pair request: ip is not a literal: " + *r.ip;
  proto::PairRequestParse again = proto::parse_pair_request(proto::pair_request_json(r));
  if (!again.request) return "pair request: our encoding is refused";
  if (describe(*again.request) != describe(r))
    return "pair request: round trip changed " + describe(r) + " into " + describe(*again.request);
  return "";
}

// Writes `body` with one of our response writers and checks the agent reads back `expect`.
inline std::string check_pair_response_written(const std::string& body,
                                               const proto::PairResponse& expect) {
  auto back = proto::parse_pair_response(body);
  if (!back.ok()) return "pair response: our body does not read back: " + back.message();
  if (describe(*back) != describe(expect))
    return "pair response: round trip gave " + describe(*back) + " for " + describe(expect);
  return "";
}

// The agent's reading of a response: a non-object is an error with the fixed prefix; what it
// reads, our writers reproduce; and check_pair_result accepts only a complete approval that
// echoes the nonce.
inline std::string check_pair_response(std::string_view body) {
  auto r = proto::parse_pair_response(body);
  if (!r.ok()) {
    if (r.message().rfind("invalid pairing response: ", 0) != 0)
      return "pair response: unexpected error text: " + r.message();
    return "";
  }
  const proto::PairResponse& got = *r;
  proto::PairResponse pending;
  pending.status = "pending";
  pending.reqid = got.reqid;
  std::string broken = check_pair_response_written(proto::pair_pending_json(got.reqid), pending);
  if (!broken.empty()) return broken;
  proto::PairResponse refused;
  refused.status = "error";
  refused.reason = got.reason;
  broken = check_pair_response_written(proto::pair_error_json(got.reason), refused);
  if (!broken.empty()) return broken;
  refused.status = "denied";
  broken = check_pair_response_written(proto::pair_denied_json(got.reason), refused);
  if (!broken.empty()) return broken;
  proto::PairApproval a{got.cert, got.ca, got.nonce, got.dispatcher_serial, got.dispatcher_id};
  proto::PairResponse approved = got;
  approved.status = "approved";
  approved.reqid.clear();
  approved.reason.clear();
  broken = check_pair_response_written(proto::pair_approved_json(a), approved);
  if (!broken.empty()) return broken;

  const std::string echoed = got.nonce.value_or("");
  for (std::string_view sent : {std::string_view(echoed), std::string_view("x")}) {
    Status st = proto::check_pair_result(got, sent);
    bool complete = got.status == "approved" && got.nonce && *got.nonce == sent &&
                    !got.cert.empty() && !got.ca.empty();
    if (st.ok() != complete) return "check_pair_result disagrees with its rule";
    if (!st.ok() && st.message().empty()) return "check_pair_result: empty error";
  }
  return "";
}

// What a decoded request must look like on the wire: the only encoding of its fields.
inline std::string check_request_frame(std::string_view bytes) {
  using proto::FrameStatus;
  proto::RequestDecode d = proto::decode_request(bytes);
  if (d.status == FrameStatus::need_more) {
    if (d.consumed != 0 || !d.error.empty()) return "request need_more with state";
    return "";
  }
  if (d.status == FrameStatus::error) {
    if (d.error != "malformed request" && d.error != "frame too large")
      return "request: unexpected error text: " + d.error;
    // An error is final: no later bytes can repair the frame.
    std::string more(bytes);
    more.append(64, '\0');
    if (proto::decode_request(more).status != FrameStatus::error)
      return "request: more bytes turned an error into something else";
    return "";
  }
  if (d.consumed < 4 || d.consumed > bytes.size()) return "request: consumed out of range";
  if (d.request.args.size() > proto::kMaxFrameArgs) return "request: too many args accepted";
  auto encoded = proto::encode_request(d.request);
  if (!encoded.ok()) return "request: a decoded frame cannot be encoded: " + encoded.message();
  if (*encoded != bytes.substr(0, d.consumed)) return "request: re-encoding differs";
  // Every strict prefix needs more bytes (a bounded sample of them for large frames).
  for (size_t n : {size_t{0}, size_t{3}, size_t{4}, d.consumed / 2, d.consumed - 1}) {
    if (n >= d.consumed) continue;
    if (proto::decode_request(bytes.substr(0, n)).status != FrameStatus::need_more)
      return "request: a strict prefix of " + std::to_string(n) + " bytes did not need more";
  }
  return "";
}

inline std::string check_response_frame(std::string_view bytes) {
  using proto::FrameStatus;
  proto::ResponseDecode d = proto::decode_response(bytes);
  if (d.status == FrameStatus::need_more) {
    if (d.consumed != 0 || !d.error.empty()) return "response need_more with state";
    return "";
  }
  if (d.status == FrameStatus::error) {
    if (d.error != "response too large") return "response: unexpected error text: " + d.error;
    std::string more(bytes);
    more.append(64, '\0');
    if (proto::decode_response(more).status != FrameStatus::error)
      return "response: more bytes turned an error into something else";
    return "";
  }
  if (d.consumed < 12 || d.consumed > bytes.size()) return "response: consumed out of range";
  if (proto::encode_response(d.response) != bytes.substr(0, d.consumed))
    return "response: re-encoding differs";
  for (size_t n : {size_t{0}, size_t{3}, size_t{4}, d.consumed / 2, d.consumed - 1}) {
    if (n >= d.consumed) continue;
    if (proto::decode_response(bytes.substr(0, n)).status != FrameStatus::need_more)
      return "response: a strict prefix of " + std::to_string(n) + " bytes did not need more";
  }
  return "";
}

// The parsed document, or nullopt when `text` is not JSON.
inline std::optional<json::Document> parse_json(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc.ok()) return std::nullopt;
  return std::move(doc).value();
}

// A reply reader and its writer: what the reader accepts, the writer writes and the reader
// reads back; the written form is a fixed point from the second write on (a -0.0 inside a
// capabilities schema is written "-0" once and reads back as 0).
template <typename Reply> std::string check_reply(const json::Value& v, const char* name) {
  auto first = Reply::from_json(v);
  if (!first.ok()) {
    if (first.message().empty()) return std::string(name) + ": empty error";
    if (!v.IsObject() && first.message() != "expected a JSON object")
      return std::string(name) + ": a non-object read as " + first.message();
    return "";
  }
  if (!v.IsObject()) return std::string(name) + ": read from a non-object";
  std::string once = first->to_json();
  std::string text = once;
  for (int round = 0; round < 2; ++round) {
    auto doc = parse_json(text);
    if (!doc) return std::string(name) + ": our reply is not JSON: " + text;
    auto back = Reply::from_json(*doc);
    if (!back.ok()) return std::string(name) + ": our reply does not read back: " + back.message();
    std::string next = back->to_json();
    if (round == 1 && next != text)
      return std::string(name) + ": reply write/read is not stable: " + text + " -> " + next;
    text = next;
  }
  return "";
}

// The agent's loose request readers: whatever they read, the dispatcher's writer reproduces,
// and the readers agree with each other on the members they share.
inline std::string check_request_bodies(std::string_view body) {
  proto::RunRequestParse run = proto::parse_run_request(body);
  auto doc = parse_json(body);
  bool is_object = doc && doc->IsObject();
  if ((run.error == proto::RunRequestError::invalid_json) == is_object)
    return "run: invalid_json disagrees with the body being an object";
  if (run.error != proto::RunRequestError::none) {
    if (proto::run_request_error_text(run.error).empty()) return "run: error without text";
    if (!run.request.args.empty()) return "run: args kept after an error";
  } else {
    for (const std::string& a : run.request.args)
      if (a.find('\0') != std::string::npos) return "run: an arg with a NUL byte was accepted";
    const proto::RunRequest& r = run.request;
    proto::RunRequestParse again = proto::parse_run_request(r.to_json());
    const proto::RunRequest& b = again.request;
    if (again.error != proto::RunRequestError::none) return "run: our body is refused";
    if (b.script != r.script || b.args != r.args || b.reqid != r.reqid ||
        b.username != r.username || b.token != r.token || b.async != r.async)
      return "run: round trip changed the request";
  }

  proto::PingRequest ping = proto::PingRequest::parse(body);
  proto::RenewRequest renew = proto::RenewRequest::parse(body);
  proto::RenewCompleteRequest complete = proto::RenewCompleteRequest::parse(body);
  proto::RotateRequest rotate = proto::RotateRequest::parse(body);
  // Every reader takes reqid the same loose way.
  if (ping.reqid != run.request.reqid || renew.reqid != ping.reqid || complete.reqid != ping.reqid)
    return "the request readers disagree on reqid";
  if (!is_object && (!ping.reqid.empty() || !complete.cert.empty() || !rotate.serial.empty()))
    return "a member was read from a body that is not an object";
  if (proto::PingRequest::parse(ping.to_json()).reqid != ping.reqid) return "ping round trip";
  if (proto::RenewRequest::parse(renew.to_json()).reqid != renew.reqid) return "renew round trip";
  proto::RenewCompleteRequest c2 = proto::RenewCompleteRequest::parse(complete.to_json());
  if (c2.cert != complete.cert || c2.ca != complete.ca || c2.reqid != complete.reqid)
    return "renew-complete round trip";
  if (rotate.action.empty()) return "rotate: empty action (must default to add)";
  proto::RotateRequest r2 = proto::RotateRequest::parse(rotate.to_json());
  if (r2.serial != rotate.serial || r2.action != rotate.action || r2.token != rotate.token)
    return "rotate round trip";
  return "";
}

} // namespace wire_detail

// Returns "" when every invariant holds, else what broke.
inline std::string check_pairing_message(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string broken = wire_detail::check_pair_request(body);
  if (!broken.empty()) return broken;
  return wire_detail::check_pair_response(body);
}

// The same bytes as a stream of request frames (as the executor reads its socket) and as one
// response (as the agent reads the executor's answer).
inline std::string check_executor_frames(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view rest = bytes;
  while (true) {
    std::string broken = wire_detail::check_request_frame(rest);
    if (!broken.empty()) return broken;
    proto::RequestDecode d = proto::decode_request(rest);
    if (d.status != proto::FrameStatus::complete) break;
    rest.remove_prefix(d.consumed);
  }
  return wire_detail::check_response_frame(bytes);
}

inline std::string check_agent_wire_body(const uint8_t* data, size_t size) {
  using namespace wire_detail;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string broken = check_request_bodies(body);
  if (!broken.empty()) return broken;
  auto doc = parse_json(body);
  if (!doc) return "";
  for (const std::string& b : {check_reply<proto::ErrorReply>(*doc, "ErrorReply"),
                               check_reply<proto::RunResult>(*doc, "RunResult"),
                               check_reply<proto::AsyncReply>(*doc, "AsyncReply"),
                               check_reply<proto::ResultRecord>(*doc, "ResultRecord"),
                               check_reply<proto::PingReply>(*doc, "PingReply"),
                               check_reply<proto::CapabilitiesReply>(*doc, "CapabilitiesReply"),
                               check_reply<proto::RotateReply>(*doc, "RotateReply"),
                               check_reply<proto::RenewReply>(*doc, "RenewReply"),
                               check_reply<proto::RenewCompleteReply>(*doc, "RenewCompleteReply")})
    if (!b.empty()) return b;
  return "";
}

} // namespace cx::fuzz
