// GET /result/<reqid> (agent-and-wire §3.4.4, §3.7): an async run's stored record, for its owner
// only.
#include "agent/async_job.hpp"
#include "agent/handlers.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

void handle_result(Context& ctx, Call& call) {
  const std::string& reqid = call.param;
  const std::string* disp = ctx.trusted_dispatcher(call, reqid);
  if (!disp) return;
  auto found = find_async_record(ctx.state()->config.async_runs_dir, *disp, reqid);
  log::Fields f{{"PEER", call.peer.ip}, {"DISPATCHER", *disp}, {"REQID", reqid}};
  switch (found.kind) {
  case RecordLookup::Kind::found:
    f.push_back({"STATUS", log_safe(found.status)});
    log::info("result", f);
    call.client->respond(200, found.json);
    return;
  case RecordLookup::Kind::not_owner:
    f.push_back({"REASON", "not-owner"});
    log::warning("result-deny", f);
    break;
  case RecordLookup::Kind::missing:
    log::info("result-miss", f);
    break;
  }
  call.client->respond(404, proto::result_unknown_json(reqid));
}

} // namespace cx::agent
