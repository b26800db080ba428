// The pairing exchange's messages; see pairing_wire.hpp.
#include "proto/pairing_wire.hpp"

#include "base/strings.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::proto {
namespace {

// Perl truth of a string: not empty and not "0".
bool perl_true(const std::optional<std::string>& s) {
  return s && !s->empty() && *s != "0";
}

} // namespace

std::string pair_request_json(const PairRequest& req) {
  json::Writer w;
  w.begin_object().member("hostname", req.hostname).member("csr", req.csr);
  if (req.nonce) w.member("nonce", *req.nonce);
  if (req.lookup_by) w.member("lookup_by", *req.lookup_by);
  if (req.port) w.member("port", *req.port);
  if (req.ip) w.member("ip", *req.ip);
  w.end_object();
  return w.str();
}

PairRequestParse parse_pair_request(std::string_view body) {
  PairRequestParse out;
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject()) {
    out.reason = kPairInvalidRequest;
    return out;
  }
  const json::Value& o = *doc;
  auto csr = json::scalar_member(o, "csr");
  auto hostname = json::scalar_member(o, "hostname");
  if (!perl_true(csr) || !perl_true(hostname)) {
    out.reason = kPairInvalidRequest;
    return out;
  }
  if (!is_agent_name(*hostname)) {
    out.reason = kPairInvalidHostname;
    return out;
  }
  PairRequest req;
  req.hostname = std::move(*hostname);
  req.csr = std::move(*csr);
  if (const json::Value* n = json::find(o, "nonce"); n && n->IsString())
    req.nonce = std::string(n->GetString(), n->GetStringLength());
  if (auto lb = json::scalar_member(o, "lookup_by"); lb && (*lb == "ip" || *lb == "hostname"))
    req.lookup_by = std::move(*lb);
  if (auto p = json::scalar_member(o, "port"); p && is_digits(*p)) {
    auto n = parse_uint(*p);
    if (n && *n >= 1 && *n <= 65535) req.port = static_cast<int>(*n);
  }
  if (auto ip = json::scalar_member(o, "ip"); ip && (looks_like_ipv4(*ip) || looks_like_ipv6(*ip)))
    req.ip = std::move(*ip);
  out.request = std::move(req);
  return out;
}

std::string pair_pending_json(std::string_view reqid) {
  json::Writer w;
  w.begin_object().member("status", "pending").member("reqid", reqid).end_object();
  return w.str();
}

std::string pair_error_json(std::string_view reason) {
  json::Writer w;
  w.begin_object().member("status", "error").member("reason", reason).end_object();
  return w.str();
}

std::string pair_denied_json(std::string_view reason) {
  json::Writer w;
  w.begin_object().member("status", "denied").member("reason", reason).end_object();
  return w.str();
}

std::string pair_approved_json(const PairApproval& a) {
  json::Writer w;
  w.begin_object()
      .member("status", "approved")
      .member("cert", a.cert)
      .member("ca", a.ca)
      .member("nonce", a.nonce)
      .member("dispatcher_serial", a.dispatcher_serial)
      .member("dispatcher_id", a.dispatcher_id)
      .end_object();
  return w.str();
}

Result<PairResponse> parse_pair_response(std::string_view body) {
  auto doc = json::parse_object(body);
  if (!doc.ok()) return error("invalid pairing response: " + doc.message());
  const json::Value& o = *doc;
  PairResponse r;
  r.status = json::scalar_or_empty(o, "status");
  r.reqid = json::scalar_or_empty(o, "reqid");
  r.reason = json::scalar_or_empty(o, "reason");
  r.cert = json::scalar_or_empty(o, "cert");
  r.ca = json::scalar_or_empty(o, "ca");
  r.nonce = json::scalar_member(o, "nonce");
  r.dispatcher_serial = json::scalar_or_empty(o, "dispatcher_serial");
  r.dispatcher_id = json::scalar_or_empty(o, "dispatcher_id");
  return r;
}

Status check_pair_result(const PairResponse& r, std::string_view sent_nonce) {
  if (r.status != "approved") return error(r.reason.empty() ? "denied" : r.reason);
  if (!r.nonce || *r.nonce != sent_nonce) return error("nonce mismatch in pairing result");
  if (r.cert.empty() || r.ca.empty())
    return error("pairing result carries no certificate or no CA certificate");
  return {};
}

} // namespace cx::proto
