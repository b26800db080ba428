// POST /run (agent-and-wire §3.4.1): the map gate, the body, the allowlist (name rule, entry,
// script_dirs at execution time), the auth hook (action "run"), then the script, synchronously
// here (directly or through the executor, §4.8) or as an async job (handle_run_async.cpp).
#include "agent/handlers.hpp"
#include "agent/run_job.hpp"
#include "agent/runner.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"

namespace cx::agent {

std::string job_context(const RunJob& job) {
  return context_json({job.req.script, job.req.args, job.req.reqid, job.peer.ip, job.req.username,
                       job.req.token, job.dispatcher, job.timestamp});
}

namespace {

void finish(Context& ctx, RunJob& job, int exit, std::string out, std::string err, bool truncated,
            bool timed_out, std::optional<std::string> error) {
  log::info("run", {{"SCRIPT", job.req.script},
                    {"EXIT", std::to_string(exit)},
                    {"PEER", job.peer.ip},
                    {"DISPATCHER", job.dispatcher},
                    {"REQID", reqid_field(job.req.reqid)}});
  proto::RunResult r;
  r.script = job.req.script;
  r.exit = exit;
  r.out = std::move(out);
  r.err = std::move(err);
  r.reqid = job.req.reqid;
  r.error = std::move(error);
  r.truncated = truncated;
  r.timed_out = timed_out;
  ctx.metrics().run_finished(exit, timed_out);
  if (job.stream) {
    job.stream->flush();
    job.client->send(r.to_json() + "\n");
    job.client->end_stream();
  } else {
    job.client->respond(200, r.to_json());
  }
  ctx.drop(job.id);
}

// A started script runs to its end even if the client leaves; its result is then only logged.
void run_authorised(Context& ctx, RunJob& job) {
  if (job.req.async) return run_async(ctx, job);
  const auto& cfg = job.state->config;
  std::string context = job_context(job);
  auto on_outcome = [&ctx, &job](RunOutcome o) {
    if (o.timed_out)
      log::warning("script-timeout", {{"SCRIPT", job.req.script},
                                      {"TIMEOUT", std::to_string(job.state->config.script_timeout)},
                                      {"REQID", reqid_field(job.req.reqid)}});
    std::optional<std::string> error = o.timed_out ? o.error : std::nullopt;
    finish(ctx, job, o.exit, std::move(o.out), std::move(o.err), o.truncated, o.timed_out,
           std::move(error));
  };
  if (cfg.executor_socket) {
    ExecRequest er{job.req.reqid, job.dispatcher, job.req.script, context, job.req.args};
    job.exec = ExecutorCall::start(
        ctx.loop(), *cfg.executor_socket, er,
        [on_outcome](ExecResponse r) { on_outcome(outcome_from_executor(std::move(r))); },
        executor_call_timeout_ms(cfg.script_timeout));
    return;
  }
  RunSpec spec;
  if (job.req.stream) {
    // Live output (ours): the answer becomes NDJSON from here; every refusal before this
    // point was the usual JSON object. The executor's frame carries the output only at the
    // end, so a run through it answers as the original does (docs/COMPATIBILITY.md).
    job.client->begin_stream(200, proto::kNdjsonType);
    job.stream = std::make_unique<OutputStream>(
        ctx.loop(), [client = job.client](std::string line) { client->send(std::move(line)); });
    spec.on_output = [stream = job.stream.get()](bool is_out, std::string_view kept) {
      stream->output(is_out, kept);
    };
  }
  spec.path = job.path;
  spec.args = job.req.args;
  spec.stdin_data = std::move(context);
  spec.stdin_timeout_ms = static_cast<uint64_t>(cfg.stdin_timeout) * 1000;
  spec.on_stdin_timeout = log_stdin_timeout;
  spec.timeout_ms = static_cast<uint64_t>(cfg.script_timeout) * 1000;
  spec.output_limit = static_cast<size_t>(cfg.script_output_limit);
  job.process = start_script(ctx.loop(), spec, on_outcome);
}

} // namespace

void handle_run(Context& ctx, Call& call) {
  const std::string* disp = ctx.trusted_dispatcher(call, "(none)");
  if (!disp) return;
  auto st = ctx.state();
  auto parsed = proto::parse_run_request(call.body);
  proto::RunResult refusal;
  if (parsed.error == proto::RunRequestError::invalid_json) {
    refusal.error = std::string(proto::run_request_error_text(parsed.error));
    call.client->respond(200, refusal.to_json());
    return;
  }
  proto::RunRequest& rq = parsed.request;
  if (parsed.error != proto::RunRequestError::none) {
    refusal.error = std::string(proto::run_request_error_text(parsed.error));
    refusal.reqid = rq.reqid;
    call.client->respond(200, refusal.to_json());
    return;
  }
  refusal.script = rq.script;
  refusal.reqid = rq.reqid;

  // The name rule, the allowlist, and script_dirs again at execution time (the file system
  // may have changed since the allowlist was loaded).
  auto entry = st->scripts.find(rq.script);
  if (!is_script_name(rq.script) || entry == st->scripts.end() ||
      !conf::in_script_dirs(entry->second.path, st->config.script_dirs)) {
    log::warning("deny", {{"SCRIPT", log_safe(rq.script)},
                          {"PEER", call.peer.ip},
                          {"REQID", reqid_field(rq.reqid)}});
    ctx.metrics().refused("deny");
    refusal.error = "script not permitted";
    call.client->respond(200, refusal.to_json());
    return;
  }

  auto job = std::make_shared<RunJob>(ctx.loop(), call, *disp);
  job->state = st;
  job->path = entry->second.path;
  job->timestamp = iso8601_utc(unix_now());
  job->req = std::move(rq);
  hook::Request hr;
  hr.action = "run";
  hr.script = job->req.script;
  hr.args = job->req.args;
  hr.username = job->req.username;
  hr.token = job->req.token;
  ctx.authorise(job, std::move(hr), [&ctx](RunJob& j, const hook::Decision& d) {
    if (d.allowed) return run_authorised(ctx, j);
    ctx.metrics().refused("deny");
    log::warning("deny", {{"REASON", d.reason},
                          {"SCRIPT", j.req.script},
                          {"PEER", j.peer.ip},
                          {"DISPATCHER", j.dispatcher},
                          {"REQID", reqid_field(j.req.reqid)}});
    proto::RunResult r;
    r.script = j.req.script;
    r.reqid = j.req.reqid;
    r.error = proto::not_authorised_error(d.reason);
    j.client->respond(200, r.to_json());
    ctx.drop(j.id);
  });
}

} // namespace cx::agent
