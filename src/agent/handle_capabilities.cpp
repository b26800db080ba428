// GET /capabilities (agent-and-wire §3.4.3): the tags and allowlisted scripts, after the map
// gate (its own 403 body and log line) and the auth hook (action "discovery").
#include "agent/handlers.hpp"
#include "base/files.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

namespace {

void reply(const Identity& id, const State& st, Pending& p) {
  proto::CapabilitiesReply r;
  r.host = id.host;
  r.version = id.version;
  r.tags = st.config.tags;
  for (const auto& [name, entry] : st.scripts) {
    proto::ScriptInfo s;
    s.name = name;
    s.path = entry.path;
    s.executable = is_executable_file(entry.path);
    s.profile = entry.profile;
    if (auto it = st.sidecars.by_script.find(name); it != st.sidecars.by_script.end()) {
      s.schema_json = it->second.schema_json;
      s.schema_version = it->second.schema_version;
    }
    r.scripts.push_back(std::move(s));
  }
  log::info("capabilities", {{"PEER", p.peer.ip},
                             {"DISPATCHER", p.dispatcher},
                             {"SCRIPTS", std::to_string(r.scripts.size())}});
  p.client->respond(200, r.to_json());
}

} // namespace

void handle_capabilities(Context& ctx, Call& call) {
  auto st = ctx.state();
  const std::string* disp = st->trusted.find(call.peer.key);
  if (!disp) {
    log::warning(
        "capabilities-deny",
        {{"PEER", call.peer.ip},
         {"PEER_SERIAL", call.peer.serial},
         {"REASON", st->trusted.empty() ? "no trusted dispatchers stored" : "serial-mismatch"}});
    ctx.record_failure(call.peer.ip, RateLimiter::Failure::refused);
    call.client->respond(403, proto::body::forbidden());
    return;
  }
  auto p = std::make_shared<Pending>(ctx.loop(), call, *disp);
  hook::Request hr;
  hr.action = "discovery";
  ctx.authorise(p, std::move(hr), [&ctx, st](Pending& q, const hook::Decision& d) {
    if (d.allowed) {
      reply(ctx.identity(), *st, q);
    } else {
      log::warning("capabilities-deny",
                   {{"PEER", q.peer.ip}, {"DISPATCHER", q.dispatcher}, {"REASON", d.reason}});
      q.client->respond(403, proto::body::not_authorised());
    }
    ctx.drop(q.id);
  });
}

} // namespace cx::agent
