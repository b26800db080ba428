// POST /rotate-serial (agent-and-wire §3.4.5): a trusted dispatcher adds or removes a serial
// under its own id in the trusted map, after the map gate and the auth hook (action "rotate").
#include "agent/handlers.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

namespace {

std::string failure(const std::string& why) {
  proto::RotateReply r;
  r.status = proto::kStatusError;
  r.error = why;
  return r.to_json();
}

void apply(Context& ctx, Pending& p, const proto::RotateRequest& rq) {
  const std::string& caller = p.dispatcher;
  std::string key = wire_serial_key(rq.serial);
  Status st;
  if (key.empty()) {
    st = error("unusable serial '" + rq.serial + "'");
  } else {
    st = edit_trusted_map(ctx.state()->config.trusted_dispatchers_path, [&](TrustedMap& m) {
      return rq.action == "add" ? m.add(key, caller, true) : m.remove(key, caller);
    });
  }
  if (!st.ok()) {
    log::err("rotate-fail", {{"DISPATCHER", caller}, {"ERROR", st.message()}});
    p.client->respond(200, failure(st.message()));
    return;
  }
  // The original SIGHUPs its parent here, which re-reads the map whatever state agent.conf is
  // in; we reload in place, and if agent.conf or the allowlist cannot be loaded just now, still
  // adopt the map we have just written (the dispatcher is told "ok").
  if (!ctx.reload()) ctx.reload_trust();
  log::info("rotate", {{"DISPATCHER", caller},
                       {"SERIAL_ACTION", rq.action},
                       {"SERIAL", log_safe(rq.serial)},
                       {"PEER", p.peer.ip}});
  proto::RotateReply r;
  r.status = proto::kStatusOk;
  r.action = rq.action;
  r.serial = rq.serial;
  r.dispatcher = caller;
  p.client->respond(200, r.to_json());
}

} // namespace

void handle_rotate(Context& ctx, Call& call) {
  const std::string* disp = ctx.trusted_dispatcher(call, "(none)");
  if (!disp) return;
  auto rq = proto::RotateRequest::parse(call.body);
  if (rq.serial.empty()) {
    call.client->respond(200, failure("serial required"));
    return;
  }
  if (rq.action != "add" && rq.action != "remove") {
    call.client->respond(200, failure("invalid action '" + rq.action + "'"));
    return;
  }
  auto p = std::make_shared<Pending>(ctx.loop(), call, *disp);
  hook::Request hr;
  hr.action = "rotate";
  hr.args = {rq.action, rq.serial};
  hr.token = rq.token;
  ctx.authorise(p, std::move(hr), [&ctx, rq](Pending& q, const hook::Decision& d) {
    if (d.allowed) {
      apply(ctx, q, rq);
    } else {
      log::warning("rotate-deny", {{"DISPATCHER", q.dispatcher}, {"REASON", d.reason}});
      q.client->respond(403, proto::body::not_authorised(d.reason));
    }
    ctx.drop(q.id);
  });
}

} // namespace cx::agent
