// The bodies of 7443 and 7445, described once; see wire_schemas.hpp. The descriptions of the
// API's members are our own text (dispatcher-and-api §5, §6.5). Each set is built on first use
// and lives for the program; a definition may use the ones above it.
#include "proto/wire_schemas.hpp"

#include <iterator>

namespace cx::proto {

namespace {

Schema text(std::string_view description = {}) {
  return Schema::string().describe(description);
}

Schema flag(std::string_view description = {}) {
  return Schema::boolean().describe(description);
}

Schema one_of_texts(std::vector<std::string> values) {
  return Schema::string().enums(std::move(values));
}

Schema list_of_texts(std::string_view description = {}) {
  return Schema::array(Schema::string()).describe(description);
}

// {"status":"ok"|"error", <members>, "error"?}: the agent's rotate and renew replies.
Schema ok_or_error(std::vector<Member> members) {
  members.insert(members.begin(), required("status", one_of_texts({"ok", "error"})));
  members.push_back(optional("error", text()));
  return Schema::object(std::move(members));
}

// {"status":"ok","host":H,"version":V, <members>}: the agent's ping and capabilities replies.
Schema ok_with_identity(std::vector<Member> members) {
  members.insert(members.begin(),
                 {required("status", one_of_texts({"ok"})),
                  required("host", text("the agent's own name")), required("version", text())});
  return Schema::object(std::move(members));
}

// `"ok": true` (or false) leads every API body.
Member ok_member(bool value) {
  return required("ok", Schema::boolean().constant(value));
}

// The hosts of a /ping or /run request.
Schema requested_hosts() {
  return Schema::array(Schema::string())
      .describe("registry names, each optionally with :<port>: at least one unless tags is "
                "given, at most 500 unless batch is given");
}

// The selection and rollout members of /run and /ping (ours).
std::vector<Member> selection_members() {
  return {
      optional("tags", Schema::object()
                           .values(Schema::string())
                           .describe("ours: also address every registered agent whose cached "
                                     "tags (refreshed by ping and discovery) match all these "
                                     "members; no match is 404")
                           .example(R"({"role":"web","env":"prod"})")),
      optional("batch",
               Schema::one_of({Schema::integer(), Schema::string().pattern(R"(^[0-9]+%?$)")})
                   .describe("ours: run the selection N hosts (1 to 500), or \"N%\" of "
                             "it, at a time; each batch is a run of its own (reqid, "
                             "auth hook, locks, record)")),
      optional("batch_wait",
               Schema::number().describe("ours, with batch: seconds between batches (0 to 3600)")),
      optional("max_failures",
               Schema::one_of({Schema::integer(), Schema::string().pattern(R"(^[0-9]+%?$)")})
                   .describe("ours, with batch: once more than K hosts (or \"K%\" of the "
                             "selection) have failed, no further batch starts and the rest are "
                             "skipped; 0 stops at the first failure")),
  };
}

// `members` followed by the selection members.
std::vector<Member> with_selection(std::vector<Member> members) {
  for (auto& m : selection_members())
    members.push_back(std::move(m));
  return members;
}

} // namespace

// --- 7443: the agent's replies ---------------------------------------------------------------

AgentBodies::AgentBodies()
    : script_entry{"ScriptEntry",
                   Schema::object({
                       required("name", text()),
                       optional("path", text()),
                       optional("executable", flag()),
                       optional("profile", text()),
                       optional("schema", Schema::object().describe(
                                              "the script's argument schema, as the agent has it")),
                       optional("schema_version", text()),
                   })},
      run_result{"agent.RunResult",
                 Schema::object({
                     optional("script", text()),
                     required("exit", Schema::integer()),
                     optional("stdout", text()),
                     optional("stderr", text()),
                     optional("reqid", text()),
                     optional("error", text()),
                     optional("truncated", flag("an output stream hit the agent's "
                                                "script_output_limit")),
                     optional("timed_out", flag("the agent killed the script at its "
                                                "script_timeout")),
                     optional("host", text("never sent by our agents; a peer's own name")),
                 })},
      async_reply{"agent.AsyncReply", Schema::object({
                                          required("script", text()),
                                          required("status", one_of_texts({"accepted", "busy"})),
                                          required("reqid", text()),
                                          optional("error", text()),
                                      })},
      ping_reply{"agent.PingReply",
                 ok_with_identity({
                     required("expiry", text("the agent certificate's notAfter")),
                     required("staged", flag()),
                     required("reqid", text()),
                 })},
      capabilities_reply{"agent.CapabilitiesReply",
                         ok_with_identity({
                             required("tags", Schema::object().values(text())),
                             required("scripts", Schema::array(Schema::ref(script_entry))),
                         })},
      result_record{"agent.ResultRecord",
                    Schema::object({
                        required("reqid", text()),
                        required("status", one_of_texts({"running", "done", "unknown"})),
                        optional("script", text()),
                        optional("owner", text()),
                        optional("started", text("ISO-8601 UTC")),
                        optional("finished", text("ISO-8601 UTC")),
                        optional(run_result, "exit"),
                        optional(run_result, "stdout"),
                        optional(run_result, "stderr"),
                        optional("error", text("ours, with done: the script timed out, or its "
                                               "supervisor ended without a result "
                                               "(interrupted)")),
                        optional(run_result, "truncated"),
                        optional(run_result, "timed_out"),
                    })},
      rotate_reply{"agent.RotateReply",
                   ok_or_error({optional("action", text()), optional("serial", text()),
                                optional("dispatcher", text())})},
      renew_reply{"agent.RenewReply",
                  ok_or_error({optional("csr", text()), optional("reqid", text())})},
      renew_complete_reply{"agent.RenewCompleteReply",
                           ok_or_error({optional("reqid", text()), optional("staged", flag())})},
      error_reply{"agent.ErrorReply",
                  Schema::object({required("error", text()), optional("status", text())})} {}

const AgentBodies& agent_bodies() {
  static const AgentBodies bodies;
  return bodies;
}

// --- 7445: the API ---------------------------------------------------------------------------

namespace {

struct ApiBodies {
  const AgentBodies& agent = agent_bodies();

  Definition host_state{
      "HostState",
      one_of_texts({std::begin(kHostStates), std::end(kHostStates)})
          .describe("How the exchange with this host ended: ok (the agent answered as asked; a "
                    "script's non-zero exit is still ok), error, timeout, unreachable (no such "
                    "name, refused, no route), busy (already running there) or denied (the agent "
                    "refused this dispatcher or its hook said no).")};
  Member state = optional("state", Schema::ref(host_state));

  Definition health_response{"HealthResponse",
                             Schema::object({ok_member(true), required("version", text())})};

  Definition index_response{
      "IndexResponse",
      Schema::object({
          required("name", Schema::string().constant("ctrl-exec-api")),
          required("version", text()),
          required("spec", text("path of the static OpenAPI document")),
          required("live_spec", text("path of the live OpenAPI document")),
          required("endpoints", Schema::array(Schema::object(
                                    {required("method", text()), required("path", text())}))),
      })};

  Definition ping_request{"PingRequest", Schema::object(with_selection({
                                             optional("hosts", requested_hosts()),
                                             optional("username", text("passed to the auth hook")),
                                             optional("token", text("passed to the auth hook")),
                                         }))};

  Definition ping_result{
      "PingResult",
      Schema::object({
          required("host", text("the registry name")),
          required("status", one_of_texts({"ok", "error", "skipped"})),
          optional("rtt", Schema::string().example("12ms")),
          optional(agent.ping_reply, "version"),
          optional(agent.ping_reply, "expiry"),
          optional(agent.ping_reply, "staged"),
          optional(agent.ping_reply, "reqid"),
          optional("reported_hostname", text("the agent's own name, when it differs")),
          optional("error", text()),
          state,
      })};

  // One batch of a rollout (ours).
  Definition batch{
      "Batch",
      Schema::object({
          required("batch", Schema::integer().describe("from 1")),
          optional("reqid", text("the batch's run; absent when skipped")),
          required("hosts", list_of_texts("registry names")),
          required("state", one_of_texts({"done", "refused", "skipped"})
                                .describe("refused: the auth hook said no, or a host+script "
                                          "pair was locked; skipped: never started")),
          required("failed", Schema::integer()),
          optional("started", text("ISO-8601 UTC with milliseconds")),
          optional("finished", text("ISO-8601 UTC with milliseconds")),
      })};
  Member batches =
      optional("batches",
               Schema::array(Schema::ref(batch)).describe("ours: with batch, each batch in order"));
  Member stopped = optional("stopped", text("ours: why the rollout stopped before its last "
                                            "batch; the rest are skipped"));

  Definition ping_response{
      "PingResponse",
      Schema::object({ok_member(true), required("results", Schema::array(Schema::ref(ping_result))),
                      batches, stopped})};

  Definition run_request{
      "RunRequest",
      Schema::object(with_selection({
          optional("hosts", requested_hosts()),
          required("script",
                   Schema::string().pattern(R"(^[\w-]+$)").describe("an allowlisted script name")),
          optional("args", Schema::array(Schema::string())
                               .default_json("[]")
                               .describe("passed to the script as argv, untouched")),
          optional("username", text("passed to the auth hooks and the script")),
          optional("token", text("passed to the auth hooks and the script")),
          optional("async", Schema::boolean().default_json("false").describe(
                                "answer 202 once submitted; collect with GET /status/{reqid}")),
          optional("stream", Schema::boolean().default_json("false").describe(
                                 "ours: answer with live events (application/x-ndjson, or "
                                 "text/event-stream when the Accept header asks for it) as "
                                 "the hosts produce output and end, then the usual answer; "
                                 "not with async, nor with an Idempotency-Key")),
      }))};

  Definition run_result{
      "RunResult",
      Schema::object(
          {
              required("host", text()),
              optional(agent.run_result, "script"),
              required(agent.run_result, "exit")
                  .describe(
                      "the script's exit status; -1 for a dispatcher-side failure or an agent "
                      "refusal"),
              optional(agent.run_result, "stdout"),
              optional(agent.run_result, "stderr"),
              optional("rtt", text()),
              optional(agent.run_result, "reqid"),
              optional("reported_hostname", text()),
              optional(agent.run_result, "error"),
              optional(agent.run_result, "truncated"),
              optional(agent.run_result, "timed_out"),
              state,
          })
          .extra_members()};

  Definition run_response{"RunResponse",
                          Schema::object({
                              ok_member(true),
                              required("reqid", text()),
                              required("results", Schema::array(Schema::ref(run_result))),
                          })};

  // An agent that will not run asynchronously (an executor is configured, say) answers as a
  // sync run would, {script, exit:-1, error, reqid}, and the API passes that on: no status then.
  Definition async_submit_result{
      "AsyncSubmitResult",
      Schema::object({
          required("host", text()),
          optional(agent.async_reply, "script"),
          optional("status", one_of_texts({"accepted", "busy", "error", "skipped"})
                                 .describe("absent when the agent refused to run asynchronously "
                                           "and answered as a synchronous run would")),
          optional(agent.run_result, "exit")
              .describe("-1 when the agent refused to run asynchronously (then without status)"),
          optional(agent.async_reply, "reqid"),
          optional("rtt", text()),
          optional(agent.async_reply, "error"),
          state,
      })};

  Definition async_submit_response{
      "AsyncSubmitResponse",
      Schema::object({
          ok_member(true),
          required("reqid", text()),
          required("async", Schema::boolean().constant(true)),
          required("results", Schema::array(Schema::ref(async_submit_result))),
      })};

  // A batched run (ours): each batch has its reqid in `batches`.
  Definition run_rollout_response{
      "RunRolloutResponse",
      Schema::object({ok_member(true), required("results", Schema::array(Schema::ref(run_result))),
                      required("batches", Schema::array(Schema::ref(batch))), stopped})};
  Definition async_rollout_response{
      "AsyncRolloutResponse",
      Schema::object({ok_member(true), required("async", Schema::boolean().constant(true)),
                      required("results", Schema::array(Schema::ref(async_submit_result))),
                      required("batches", Schema::array(Schema::ref(batch))), stopped})};

  // The events of a streamed /run (ours; engine/live.hpp), one per NDJSON line or SSE event.
  Member t_member = required(
      "t", Schema::integer().describe("milliseconds since the stream began, dispatcher's clock"));
  Definition run_output_event{
      "RunOutputEvent",
      Schema::object({
          required("event", Schema::string().constant("output")),
          required("host", text("the registry name")),
          required("stream", one_of_texts({"stdout", "stderr"})),
          required("data", text("a piece of output: whole lines where lines exist")),
          optional("ms", Schema::integer().describe(
                             "milliseconds since the script started, on the agent's clock; "
                             "absent when the agent answered whole (an original agent) and "
                             "the output was taken from its result")),
          t_member,
      })};
  Definition run_result_event{"RunResultEvent",
                              Schema::object({
                                  required("event", Schema::string().constant("result")),
                                  required("host", text("the registry name")),
                                  t_member,
                                  required("result", Schema::ref(run_result)),
                              })};
  Definition run_batch_event{"RunBatchEvent",
                             Schema::object({
                                 required("event", Schema::string().constant("batch")),
                                 t_member,
                                 required("batch", Schema::ref(batch)),
                             })};

  // A run repeated with its Idempotency-Key when no answer was stored for it (ours).
  Definition run_state{
      "RunState",
      Schema::object({
          ok_member(true),
          required("reqid", text()),
          required("mode", one_of_texts({"sync", "async"})),
          required("status",
                   one_of_texts({"submitted", "unknown", "complete"})
                       .describe("submitted: the first request's dispatch is still under way "
                                 "(202); unknown: the API stopped before it recorded the "
                                 "outcome, so the script may have run on some, all or none of "
                                 "the hosts; complete: the run ended, see GET /status/{reqid}")),
          optional("error", text("with unknown: why")),
      })};

  Definition host_status{
      "HostStatus",
      Schema::object({
          required("status", one_of_texts({"accepted", "running", "done", "expired", "busy",
                                           "error", "submitted", "unknown"})
                                 .describe("submitted and unknown are ours: the API's record "
                                           "of a dispatch that had not ended, or never will")),
          optional(agent.result_record, "exit"),
          optional(agent.result_record, "stdout"),
          optional(agent.result_record, "stderr"),
          optional("error", text()),
          optional(agent.result_record, "truncated"),
          optional(agent.result_record, "timed_out"),
          optional("fetch_error", text("the last attempt to fetch the result failed; it is "
                                       "retried on the next request")),
      })};

  Definition status_response{
      "StatusResponse",
      Schema::object({
          ok_member(true),
          required("reqid", text()),
          required("script", text()),
          required("mode", one_of_texts({"sync", "async"})),
          optional("status",
                   one_of_texts({"submitted", "unknown"})
                       .describe("ours, only on a record written before the dispatch ended: "
                                 "submitted while it is under way, unknown when the API stopped "
                                 "before it recorded the outcome (then complete is true and the "
                                 "script may have run on some, all or none of the hosts)")),
          optional("error", text("with status unknown: why")),
          optional("hosts", Schema::one_of({Schema::object()
                                                .describe("async: per-host state")
                                                .values(Schema::ref(host_status)),
                                            list_of_texts("sync: the hosts as submitted")})),
          optional("results", Schema::array(Schema::ref(run_result)).describe("sync only")),
          optional("completed", Schema::integer().describe("sync only: unix time")),
          optional("created",
                   Schema::integer().describe("unix time; async, and records with a status, only")),
          optional("pending", list_of_texts("async only")),
          required("complete", Schema::boolean()),
      })};

  Definition discovery_request{
      "DiscoveryRequest",
      Schema::object({
          optional("hosts", Schema::array(Schema::string())
                                .max_items(500)
                                .describe("registry names; missing or empty means every "
                                          "registered agent")),
          optional("username", text()),
          optional("token", text()),
      })};

  Definition host_capabilities{"HostCapabilities",
                               Schema::object({
                                   required("host", text()),
                                   required("status", one_of_texts({"ok", "error"})),
                                   optional(agent.capabilities_reply, "version"),
                                   optional("reported_hostname", text()),
                                   optional(agent.capabilities_reply, "tags"),
                                   optional(agent.capabilities_reply, "scripts"),
                                   optional("error", text()),
                                   optional("rtt", text()),
                                   state,
                               })};

  Definition discovery_response{
      "DiscoveryResponse",
      Schema::object({
          ok_member(true),
          required("hosts", Schema::object().values(Schema::ref(host_capabilities))),
      })};

  Definition error_response{
      "ErrorResponse",
      Schema::object({
          ok_member(false),
          required("error", text("a short class, or the auth hook's reason")),
          optional("detail", text()),
          optional("code", Schema::integer().describe(
                               "1 denied, 2 bad credentials, 3 insufficient privilege, 4 locked; "
                               "any other value is the auth hook's exit status")),
          optional("conflicts", list_of_texts("with 409: the held <host>:<script> pairs")),
      })};

  std::vector<const Definition*> all{
      &host_state,           &health_response,        &index_response,        &ping_request,
      &ping_result,          &ping_response,          &run_request,           &run_result,
      &run_response,         &async_submit_result,    &async_submit_response, &run_state,
      &host_status,          &status_response,        &discovery_request,     &agent.script_entry,
      &host_capabilities,    &discovery_response,     &error_response,        &batch,
      &run_rollout_response, &async_rollout_response, &run_output_event,      &run_result_event,
      &run_batch_event,
  };
};

} // namespace

const std::vector<const Definition*>& api_bodies() {
  static const ApiBodies bodies;
  return bodies.all;
}

const Definition* find_api_body(std::string_view name) {
  for (const Definition* d : api_bodies())
    if (d->name == name) return d;
  return nullptr;
}

} // namespace cx::proto
