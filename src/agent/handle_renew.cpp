// POST /renew and POST /renew-complete (agent-and-wire §3.4.6-7): a CSR from the agent's own
// key, then the renewed certificate, checked against the CA and the key, staged for the next
// start. Neither goes through the map gate (as in the original).
#include "agent/handlers.hpp"
#include "base/files.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

namespace {
constexpr const char* kEcRenewalWarning =
    "an original (Perl) dispatcher refuses CSRs under 2048 bits, so it cannot renew this EC "
    "key; pair again with --key-type rsa to renew there";
} // namespace

void handle_renew(Context& ctx, Call& call) {
  std::string reqid = proto::RenewRequest::parse(call.body).reqid;
  const std::string& ip = call.peer.ip;
  proto::RenewReply r;
  auto key = read_file(ctx.state()->config.key, 1u << 20);
  if (!key.ok()) {
    r.status = proto::kStatusError;
    r.error = "agent key not available";
    log::err("renew", {{"PEER", ip}, {"REQID", reqid_field(reqid)}, {"ERROR", *r.error}});
    call.client->respond(200, r.to_json());
    return;
  }
  auto csr = pki::create_csr(*key, ctx.identity().host);
  if (!csr.ok()) {
    r.status = proto::kStatusError;
    r.error = "could not generate CSR";
    log::err("renew", {{"PEER", ip}, {"REQID", reqid_field(reqid)}, {"ERROR", csr.message()}});
    call.client->respond(200, r.to_json());
    return;
  }
  r.status = proto::kStatusOk;
  r.csr = std::move(*csr);
  r.reqid = reqid;
  log::info("renew", {{"PEER", ip}, {"REQID", reqid_field(reqid)}, {"STATUS", "csr-generated"}});
  // The CSR is of the key in use, so renewal keeps its type. An original (Perl) dispatcher
  // signs no CSR under 2048 bits, so it refuses an EC key's: say so where the operator of
  // the agent looks, since that dispatcher tells the agent nothing (issue 11).
  if (auto info = pki::key_info(*key); info.ok() && info->type == pki::KeyType::ec)
    log::warning("renew-key", {{"PEER", ip},
                               {"REQID", reqid_field(reqid)},
                               {"KEY", "ec-" + std::to_string(info->bits)},
                               {"WARNING", kEcRenewalWarning}});
  call.client->respond(200, r.to_json());
}

void handle_renew_complete(Context& ctx, Call& call) {
  auto rq = proto::RenewCompleteRequest::parse(call.body);
  const auto& cfg = ctx.state()->config;
  auto fail = [&](const std::string& why) {
    log::err("renew-complete",
             {{"PEER", call.peer.ip}, {"REQID", reqid_field(rq.reqid)}, {"ERROR", why}});
    proto::RenewCompleteReply r;
    r.status = proto::kStatusError;
    r.error = why;
    call.client->respond(200, r.to_json());
  };
  if (rq.cert.empty()) return fail("cert required");
  auto ca = read_file(cfg.ca, 1u << 20);
  if (!ca.ok()) return fail("CA cert not found at '" + cfg.ca + "'");
  auto key = read_file(cfg.key, 1u << 20);
  if (!key.ok()) return fail("agent key not found at '" + cfg.key + "'");
  if (!pki::verify_cert(rq.cert, *ca).ok())
    return fail("renewed cert does not verify against the agent CA");
  auto matches = pki::key_matches_cert(*key, rq.cert);
  if (!matches.ok() || !*matches)
    return fail("renewed cert public key does not match the agent key");
  WriteOptions o;
  o.mode = 0640;
  Status st = write_file_atomic(cfg.cert_staging_path, rq.cert, o);
  if (!st.ok()) return fail("could not stage cert: " + st.message());
  log::info("renew-complete",
            {{"PEER", call.peer.ip}, {"REQID", reqid_field(rq.reqid)}, {"STATUS", "cert-staged"}});
  proto::RenewCompleteReply r;
  r.status = proto::kStatusOk;
  r.reqid = rq.reqid;
  r.staged = true;
  call.client->respond(200, r.to_json());
}

} // namespace cx::agent
