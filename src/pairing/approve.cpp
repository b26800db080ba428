// Approve and deny; see approve.hpp.
#include "pairing/approve.hpp"

#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "pki/ca_store.hpp"
#include "pki/cert.hpp"
#include "pki/dispatcher_identity.hpp"
#include "pki/serial.hpp"
#include "proto/pairing_wire.hpp"
#include "state/registry.hpp"
#include "state/serials.hpp"

namespace cx::pairing {
namespace {

// Certificates signed at pairing always get 825 days: cert_days applies only to renewal and
// rotation (dispatcher-and-api §2.2, DOC≠CODE).
constexpr unsigned kPairingCertDays = 825;

bool is_ip_literal(std::string_view s) {
  return looks_like_ipv4(s) || looks_like_ipv6(s);
}

} // namespace

ApproveContext approve_context(const conf::DispatcherConfig& config) {
  ApproveContext c;
  c.ca_dir = config.ca_dir.empty() ? paths::dispatcher_etc() : config.ca_dir;
  c.cert_path = config.cert;
  c.dispatcher_id = config.dispatcher_id;
  c.queue_dir = paths::pairing_dir();
  c.registry_dir = config.registry_dir.empty() ? paths::registry_dir() : config.registry_dir;
  return c;
}

std::string check_approve_overrides(const ApproveOverrides& o) {
  if (o.lookup_by && *o.lookup_by != "ip" && *o.lookup_by != "hostname")
    return "--lookup-by must be 'ip' or 'hostname'";
  if (o.agent_port && (*o.agent_port < 1 || *o.agent_port > 65535))
    return "--agent-port must be a port number (1-65535)";
  if (o.ip && !is_ip_literal(*o.ip)) return "--ip must be an IPv4 or IPv6 address";
  return {};
}

Result<ApproveOutcome> approve_request(const ApproveContext& ctx, const std::string& id,
                                       const ApproveOverrides& overrides) {
  state::PairingQueue queue(ctx.queue_dir);
  auto req = queue.get(id);
  if (!req) return error("No pending request '" + id + "'");

  ApproveOutcome out;
  out.id = id;
  out.name = req->hostname;
  out.lookup_by = overrides.lookup_by.value_or(req->lookup_by.value_or("hostname"));
  out.port = overrides.agent_port.value_or(req->port.value_or(state::kDefaultAgentPort));
  if (overrides.ip && is_ip_literal(*overrides.ip))
    out.ip = *overrides.ip;
  else if (is_ip_literal(req->ip))
    out.ip = req->ip;
  out.source_ip = req->source_ip;
  out.reverse_dns = req->reverse_dns;
  out.reverse_confirmed = req->reverse_confirmed != 0;

  pki::IssueOptions opts;
  opts.days = kPairingCertDays; // no CN binding at pairing
  auto issued = pki::sign_with_store(pki::CaStore{ctx.ca_dir}, req->csr, opts, state::claim_serial);
  if (!issued.ok()) return issued.status();
  auto info = pki::cert_info(issued->cert_pem);
  if (!info.ok()) return error("cannot read the issued certificate: " + info.message());

  out.dispatcher_serial = pki::served_serial(ctx.cert_path);
  std::string now = iso8601_utc(unix_now());

  // Register first: the agent only gets its certificate once this dispatcher has recorded it,
  // so a failed write never leaves a paired agent that the registry does not know.
  state::AgentRecord rec;
  rec.hostname = out.name;
  rec.ip = out.ip;
  rec.paired = now;
  rec.expiry = openssl_time(info->not_after);
  rec.reqid = id;
  rec.lookup_by = out.lookup_by;
  rec.port = out.port;
  rec.dispatcher_serial = out.dispatcher_serial;
  rec.serial_status =
      std::string(out.dispatcher_serial.empty() ? state::kSerialUnknown : state::kSerialCurrent);
  rec.serial_confirmed = out.dispatcher_serial.empty() ? "" : now;
  CX_TRY(state::Registry(ctx.registry_dir).register_agent(rec));

  proto::PairApproval approval{issued->cert_pem, issued->ca_pem, req->nonce, out.dispatcher_serial,
                               ctx.dispatcher_id};
  CX_TRY(queue.write_approved(id, proto::pair_approved_json(approval)));
  log::info("pair-approve", {{"AGENT", out.name}, {"REQID", id}});
  return out;
}

std::string format_approval(const ApproveOutcome& o) {
  std::string addr = (o.lookup_by == "ip" && !o.ip.empty()) ? o.ip : o.name;
  std::string s = "Approved '" + o.name + "' (" + o.id + "). Cert delivered on next poll.\n";
  s += "  Registered:  " + o.name + "   lookup_by=" + o.lookup_by + "   addr=" + addr + ":" +
       std::to_string(o.port) + "\n";
  bool rename =
      o.reverse_confirmed && !o.reverse_dns.empty() && to_lower(o.reverse_dns) != to_lower(o.name);
  if (!o.source_ip.empty() || o.reverse_confirmed) {
    s += "  If this dispatcher cannot reach it by that, fix without re-pairing:\n";
    if (!o.source_ip.empty())
      s += "    ctrl-exec-dispatcher edit-agent " + o.name + " --lookup-by ip --ip " + o.source_ip +
           "\n";
    if (rename)
      s += "    ctrl-exec-dispatcher edit-agent " + o.name + " --rename " + o.reverse_dns + "\n";
  }
  return s;
}

std::string empty_serial_warning(const std::string& cert_path) {
  return "WARNING: could not read the dispatcher serial from '" + cert_path +
         "'.\n  The agent will trust no dispatcher serial, and every request to it will fail "
         "as a serial mismatch.\n  Run 'ctrl-exec-dispatcher setup-ctrl-exec' and re-pair.\n";
}

Status deny_request(const ApproveContext& ctx, const std::string& id) {
  state::PairingQueue queue(ctx.queue_dir);
  auto req = queue.get(id);
  if (!req) return error("No pending request '" + id + "'");
  CX_TRY(queue.write_denied(id, proto::pair_denied_json(proto::kPairRejected)));
  log::info("pair-deny", {{"AGENT", req->hostname}, {"REQID", id}});
  return {};
}

} // namespace cx::pairing
