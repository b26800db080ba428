// POST /ping (agent-and-wire §3.4.2): who this agent is, after the map gate.
#include "agent/handlers.hpp"
#include "base/files.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

void handle_ping(Context& ctx, Call& call) {
  const std::string* disp = ctx.trusted_dispatcher(call, "(none)");
  if (!disp) return;
  const Identity& id = ctx.identity();
  proto::PingReply r;
  r.host = id.host;
  r.version = id.version;
  r.expiry = id.expiry;
  r.staged = path_exists(ctx.state()->config.cert_staging_path);
  r.reqid = proto::PingRequest::parse(call.body).reqid;
  log::info("ping",
            {{"PEER", call.peer.ip}, {"DISPATCHER", *disp}, {"REQID", reqid_field(r.reqid)}});
  call.client->respond(200, r.to_json());
}

} // namespace cx::agent
