// An authorised async POST /run (agent-and-wire §3.7): the per-script lock, the `running`
// record and the job's supervisor process (see async_job.hpp for the design). Unlike the
// original, an agent with an executor runs async jobs too, through it (docs/COMPATIBILITY.md).
#include "agent/async_job.hpp"
#include "agent/run_job.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"

namespace cx::agent {

void run_async(Context& ctx, RunJob& job) {
  const auto& cfg = job.state->config;
  auto refuse = [&](std::string_view why) {
    proto::RunResult r;
    r.script = job.req.script;
    r.reqid = job.req.reqid;
    r.error = std::string(why);
    job.client->respond(200, r.to_json());
    ctx.drop(job.id);
  };
  if (!is_reqid(job.req.reqid)) return refuse(proto::kAsyncNeedsReqid);
  if (!is_owner_id(job.dispatcher)) return refuse(proto::kAsyncStartFailed);

  const std::string& runs = cfg.async_runs_dir;
  purge_async_records(runs, unix_now());
  auto store_fail = [&](const std::string& why) {
    log::err("async-store-fail", {{"REQID", job.req.reqid}, {"ERROR", why}});
    refuse(proto::kAsyncStartFailed);
  };
  if (Status st = make_dirs(runs + "/.locks", 0750); !st.ok()) return store_fail(st.message());
  FileLock lock;
  if (Status st = lock.lock(async_lock_path(runs, job.req.script), false, 0640); !st.ok()) {
    if (!lock.busy()) return store_fail(st.message());
    log::warning("run-async-busy",
                 {{"SCRIPT", job.req.script}, {"PEER", job.peer.ip}, {"REQID", job.req.reqid}});
    proto::AsyncReply r{job.req.script, std::string(proto::kStatusBusy), job.req.reqid,
                        std::string(proto::kAsyncBusy)};
    job.client->respond(409, r.to_json());
    ctx.drop(job.id);
    return;
  }

  proto::ResultRecord rec;
  rec.reqid = job.req.reqid;
  rec.status = proto::kStatusRunning;
  rec.script = job.req.script;
  rec.owner = job.dispatcher;
  rec.started = job.timestamp;
  if (Status st = write_async_record(runs, rec); !st.ok()) return store_fail(st.message());

  AsyncJob aj;
  aj.runs_dir = runs;
  aj.script = job.req.script;
  aj.path = job.path;
  aj.args = job.req.args;
  aj.context = job_context(job);
  aj.reqid = job.req.reqid;
  aj.owner = job.dispatcher;
  aj.started = job.timestamp;
  aj.stdin_timeout_ms = static_cast<uint64_t>(cfg.stdin_timeout) * 1000;
  aj.timeout_ms = static_cast<uint64_t>(cfg.script_timeout) * 1000;
  aj.output_limit = cfg.script_output_limit;
  aj.executor_socket = cfg.executor_socket.value_or("");

  event::ProcessOptions po;
  po.argv = supervisor_argv(aj);
  po.stdin_data = aj.to_json();
  po.capture_output = false;
  po.inherit_fds = {lock.fd()};
  if (ctx.start_detached(std::move(po)) == 0) {
    (void)remove_file(async_record_path(runs, rec.owner, rec.reqid));
    return store_fail("cannot start the job supervisor");
  }
  // The supervisor holds the lock through its copy of the descriptor; ours can go.
  lock.close_keep_lock();
  log::info("run-async", {{"SCRIPT", job.req.script},
                          {"PEER", job.peer.ip},
                          {"DISPATCHER", job.dispatcher},
                          {"REQID", job.req.reqid}});
  proto::AsyncReply r{job.req.script, std::string(proto::kStatusAccepted), job.req.reqid,
                      std::nullopt};
  job.client->respond(202, r.to_json());
  ctx.drop(job.id);
}

} // namespace cx::agent
