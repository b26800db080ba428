// The API routes that reach agents (dispatcher-and-api §6.5): /ping, /run, /discovery,
// /status/{reqid} and /openapi-live.json, on the shared engine. Each answers exactly once
// through its Exchange; work whose outcome must last (a run and its stored record) completes
// even when the client has gone.
#include <unistd.h>

#include <memory>

#include "api/api.hpp"
#include "api/handlers.hpp"
#include "api/openapi.hpp"
#include "api/request.hpp"
#include "base/paths.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "engine/live.hpp"
#include "engine/result.hpp"
#include "engine/runs.hpp"
#include "hook/hook.hpp"
#include "log/log.hpp"
#include "state/idempotency.hpp"
#include "state/kv.hpp"
#include "state/locks.hpp"
#include "state/run_store.hpp"
#include "json/writer.hpp"

namespace cx::api {

namespace {

using engine::Results;

// 404 for names that are not registered (§6.5).
void unknown_agents(Exchange& ex, const std::vector<std::string>& unknown) {
  ex.fail(404, "unknown agent", "not a registered agent: " + join(unknown, ", "));
}

// 503 when the shared state store cannot be read (ours, issue 17), else the 404 above.
void unresolved(Exchange& ex, const state::DispatchResolution& res) {
  if (!res.error.empty()) return ex.fail(503, "state unavailable", res.error);
  unknown_agents(ex, res.unknown);
}

// 500 when the engine refuses to start an exchange (the dispatcher's credentials cannot be
// loaded, say).
void engine_failure(Exchange& ex, const Status& st) {
  log::err("api-engine", {{"ERROR", st.message()}, {"PATH", ex.path}});
  ex.fail(500, "server error", st.message());
}

state::RunStore run_store() {
  return state::RunStore(paths::runs_dir());
}

hook::Request request_for(const char* action, std::vector<std::string> hosts, std::string username,
                          std::string token) {
  hook::Request r;
  r.action = action;
  r.hosts = std::move(hosts);
  r.username = std::move(username);
  r.token = std::move(token);
  return r;
}

// 404 for a tag selector that matches no registered agent.
void no_tag_match(Exchange& ex, const state::TagFilter& tags) {
  ex.fail(404, "unknown agent", "no registered agent matches tags: " + hook::tags_text(tags));
}

// The selection of a request with a tag selector or batches, and its batches; answers the
// error (404 unknown, 400 over the cap) and returns nullopt when there is none.
struct Planned {
  engine::Selection selection;
  std::vector<std::vector<state::DispatchTarget>> plan;
};
std::optional<Planned> plan_or_fail(Exchange& e, const std::vector<std::string>& hosts,
                                    const Targeting& t) {
  Planned p;
  p.selection = engine::select_hosts(e.api.registry(), hosts, t.tags);
  if (!p.selection.resolution.ok) {
    unresolved(e, p.selection.resolution);
    return std::nullopt;
  }
  if (p.selection.no_tag_match) {
    no_tag_match(e, *t.tags);
    return std::nullopt;
  }
  auto plan = engine::plan_batches(p.selection.resolution.hosts, t.rollout);
  if (!plan.ok()) {
    e.fail(400, "bad request", plan.message());
    return std::nullopt;
  }
  p.plan = std::move(*plan);
  return p;
}

// Live output for a streamed /run (ours): each piece of output and each host's result as an
// event of the exchange, while it is there. A host whose agent answered whole (the original's)
// has its output sent with its result.
engine::LiveFns stream_events(Exchange& ex) {
  std::weak_ptr<Exchange> weak = ex.shared_from_this();
  engine::LiveFns live;
  live.output = [weak](const std::string& host, const proto::RunChunk& c) {
    if (auto e = weak.lock())
      e->event("output", engine::output_event_json(host, c, true, e->stream_ms()));
  };
  live.host_done = [weak](const engine::HostResult& r) {
    auto e = weak.lock();
    if (!e) return;
    if (!r.streamed)
      for (const auto& c : engine::output_of(r))
        e->event("output", engine::output_event_json(r.name, c, false, e->stream_ms()));
    e->event("result", engine::result_event_json(r, e->stream_ms()));
  };
  return live;
}

// One batch of a rollout: the batch's own auth hook call (its hosts, the selector), then
// `step`; a denial refuses the batch.
using BatchStep = std::function<void(
    const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
    const std::vector<std::string>& refs, std::function<void(engine::BatchOutcome)> done)>;

// Runs a rollout for the exchange and answers it: `code` with {"ok":true,["async":true,]
// "results","batches"[,"stopped"]}. The exchange survives a disconnect: batches have lasting
// effects.
void roll_out(Exchange& ex, engine::RolloutKind kind, const std::string& script, hook::Request auth,
              Planned planned, const Targeting& t, int code, BatchStep step, bool stream = false) {
  ex.survive_disconnect();
  auto self = ex.shared_from_this();
  std::function<void(const engine::BatchReport&, const Results&)> on_batch;
  if (stream) {
    ex.begin_stream();
    on_batch = [weak = std::weak_ptr<Exchange>(self)](const engine::BatchReport& b,
                                                      const Results&) {
      if (auto e = weak.lock()) e->event("batch", engine::batch_event_json(b, e->stream_ms()));
    };
  }
  auto refs_by_selected =
      std::make_shared<engine::RefsByName>(engine::refs_by_name(planned.selection.resolution));
  engine::start_rollout(
      ex.api.loop(), {kind, script, t.rollout}, std::move(planned.plan),
      [self, kind, script, auth, refs_by_selected,
       step](size_t, const std::string& reqid, const std::vector<state::DispatchTarget>& b,
             std::function<void(engine::BatchOutcome)> done) {
        hook::Request req = auth;
        req.hosts = engine::refs_of(b, *refs_by_selected);
        auto refs = req.hosts;
        self->authorize(std::move(req), [kind, script, reqid, b, refs, step,
                                         done](Exchange&, const hook::Decision& d) {
          if (!d.allowed)
            return done(engine::refused_batch(kind, script, b, engine::HostState::denied,
                                              "Denied: " + d.reason, "denied: " + d.reason));
          step(reqid, b, refs, done);
        });
      },
      std::move(on_batch),
      [self, kind, code](engine::RolloutReport report) {
        json::Writer w;
        w.begin_object().member("ok", true);
        if (kind == engine::RolloutKind::run_async) w.member("async", true);
        w.key("results").raw(engine::results_json_array(report.results)).key("batches");
        engine::write_batches(w, report.batches);
        if (!report.stopped.empty()) w.member("stopped", report.stopped);
        w.end_object();
        self->respond(code, w.str());
      });
}

// /ping with a tag selector or batches.
void ping_selected(Exchange& ex, PingInput in) {
  auto planned = plan_or_fail(ex, in.hosts, in.target);
  if (!planned) return;
  hook::Request auth = request_for("ping", {}, in.username, in.token);
  auth.tags = in.target.tags;
  engine::Engine* eng = &ex.api.engine(); // owned by the Api, which outlives its exchanges
  if (in.target.rollout.batched())
    return roll_out(
        ex, engine::RolloutKind::ping, "", std::move(auth), std::move(*planned), in.target, 200,
        [eng](const std::string& reqid, const std::vector<state::DispatchTarget>& b,
              const std::vector<std::string>&, std::function<void(engine::BatchOutcome)> done) {
          Status st = eng->ping(b, reqid, false, [done](Results r) { done({std::move(r), ""}); });
          if (!st.ok())
            done(engine::refused_batch(engine::RolloutKind::ping, "", b, engine::HostState::error,
                                       st.message(), st.message()));
        });
  auth.hosts = planned->selection.resolution.refs;
  auto targets = planned->plan.front();
  ex.authorize(std::move(auth), [targets, eng](Exchange& e, const hook::Decision& d) {
    if (!d.allowed) return e.deny(d);
    Status st = eng->ping(targets, new_reqid(), false, e.guard([](Exchange& e2, Results results) {
      e2.respond(200, "{\"ok\":true,\"results\":" + engine::results_json_array(results) + "}");
    }));
    if (!st.ok()) engine_failure(e, st);
  });
}

} // namespace

void handle_ping(Exchange& ex) {
  auto body = parse_body_object(ex.body);
  if (!body.ok()) return ex.fail(400, "bad request", body.message());
  auto in = read_ping(*body);
  if (!in.ok()) return ex.fail(400, "bad request", in.message());
  if (!in->target.plain()) return ping_selected(ex, std::move(*in));
  auto hosts = in->hosts;
  ex.authorize(request_for("ping", in->hosts, in->username, in->token),
               [hosts](Exchange& e, const hook::Decision& d) {
                 if (!d.allowed) return e.deny(d);
                 auto res = e.api.registry().resolve_dispatch(hosts);
                 if (!res.ok) return unresolved(e, res);
                 Status st = e.api.engine().ping(
                     res.hosts, new_reqid(), false, e.guard([](Exchange& e2, Results results) {
                       e2.respond(200, "{\"ok\":true,\"results\":" +
                                           engine::results_json_array(results) + "}");
                     }));
                 if (!st.ok()) engine_failure(e, st);
               });
}

namespace {

// POST /run with an Idempotency-Key (docs/COMPATIBILITY.md, API): the key, its submitter's
// scope and what was asked, and the index entry they name.
struct KeyedRun {
  std::string key, scope, request, path;
};

// What the index and the run store say about a repeated key, read on the thread pool.
struct Repeat {
  std::optional<state::IdempotencyEntry> entry;
  std::string run_state; // without a stored answer: submitted, unknown or complete
};

// What a RunInput asks, as the index compares it: the token is left out (it is in the scope).
std::string request_text(const RunInput& in) {
  json::Writer w;
  w.begin_object()
      .member("args", in.args)
      .member("async", in.async)
      .member("hosts", in.hosts)
      .member("script", in.script);
  if (in.target.tags) w.member("tags", hook::tags_text(*in.target.tags));
  w.member("username", in.username).end_object();
  return w.str();
}

// {"ok":true,"reqid":R,"mode":M,"status":S,"error"?:E}: a repeat of a run that has no stored
// answer. 202 while it is submitted, 200 once its outcome is unknown or complete.
void answer_run_state(Exchange& e, const std::string& reqid, bool async, std::string_view status) {
  json::Writer w;
  w.begin_object()
      .member("ok", true)
      .member("reqid", reqid)
      .member("mode", async ? "async" : "sync")
      .member("status", status);
  if (status == state::kRunUnknown) w.member("error", state::kRunUnknownError);
  w.end_object();
  e.respond(status == state::kRunSubmitted ? 202 : 200, w.str());
}

void answer_repeat(Exchange& e, const KeyedRun& keyed, const state::IdempotencyEntry& entry,
                   const std::string& run_state) {
  if (entry.request != keyed.request)
    return e.fail(422, "idempotency key reused",
                  "this Idempotency-Key was used for a different request (run " + entry.reqid +
                      ")");
  if (entry.code && entry.answer) return e.respond(*entry.code, *entry.answer);
  answer_run_state(e, entry.reqid, entry.async, run_state);
}

// Reads the entry of a key and, when it has no answer, the state of its run (settling a run
// whose API process is gone). On the thread pool.
Repeat look_up(const KeyedRun& keyed) {
  Repeat out;
  state::IdempotencyIndex index(paths::runs_dir());
  out.entry = index.find(keyed.scope, keyed.key, unix_now());
  if (!out.entry || out.entry->answer) return out;
  state::RunStore store = run_store();
  auto record = store.load(out.entry->reqid);
  if (!record) {
    // Claimed, but its record is gone (purged): nothing more can be said.
    out.run_state = std::string(state::kRunUnknown);
    return out;
  }
  (void)store.settle_abandoned(out.entry->reqid, *record);
  std::string st = state::run_state(*record);
  out.run_state = st.empty() ? "complete" : st;
  return out;
}

void dispatch_run(Exchange& e, std::shared_ptr<RunInput> in, std::shared_ptr<KeyedRun> keyed);

// A keyed run: an in-flight repeat in this process is answered at once; otherwise the index
// is read, and a key seen before is answered from it instead of running again.
void run_keyed(Exchange& e, std::shared_ptr<RunInput> in, std::shared_ptr<KeyedRun> keyed) {
  auto in_flight = [](Exchange& x, const KeyedRun& k) {
    auto it = x.api.runs().inflight.find(k.path);
    if (it == x.api.runs().inflight.end()) return false;
    if (it->second.request != k.request) {
      x.fail(422, "idempotency key reused",
             "this Idempotency-Key was used for a different request (run " + it->second.reqid +
                 ")");
    } else {
      answer_run_state(x, it->second.reqid, it->second.async, state::kRunSubmitted);
    }
    return true;
  };
  if (in_flight(e, *keyed)) return;
  auto found = std::make_shared<Repeat>();
  event::queue_work(
      e.api.loop(), [keyed, found] { *found = look_up(*keyed); },
      e.guard([in, keyed, found, in_flight](Exchange& x) {
        if (found->entry) return answer_repeat(x, *keyed, *found->entry, found->run_state);
        if (in_flight(x, *keyed)) return; // claimed meanwhile by a request of this process
        dispatch_run(x, in, keyed);
      }));
}

// Locks, resolves, writes the `submitted` record (and claims the key), then dispatches; the
// final record and the key's answer are stored before the client is answered.
void dispatch_run(Exchange& e, std::shared_ptr<RunInput> in, std::shared_ptr<KeyedRun> keyed) {
  // Held for the whole dispatch (docs/COMPATIBILITY.md); released when the run completes.
  auto locks = std::make_shared<state::Acquisition>(
      state::Locks(paths::locks_dir()).acquire(in->hosts, in->script));
  if (!locks->status.ok()) {
    // The shared state store is down (ours, issue 17): the service is, for now.
    if (state::shared_kv()) return e.fail(503, "state unavailable", locks->status.message());
    return e.fail(500, "server error", locks->status.message());
  }
  if (!locks->conflicts.empty()) {
    json::Writer w;
    w.begin_object()
        .member("ok", false)
        .member("error", "locked")
        .member("code", 4)
        .member("conflicts", locks->conflicts)
        .end_object();
    return e.respond(409, w.str());
  }
  auto res = e.api.registry().resolve_dispatch(in->hosts);
  if (!res.ok) return unresolved(e, res);

  engine::RunSpec spec;
  spec.script = in->script;
  spec.args = in->args;
  spec.reqid = new_reqid();
  spec.username = in->username;
  spec.token = in->token;
  spec.async = in->async;
  hook::Submitter submitter{in->username, e.peer_ip};
  // From here the run goes on, and is stored, even if the client disconnects.
  e.survive_disconnect();

  std::vector<std::string> names;
  for (const auto& t : res.hosts)
    names.push_back(t.name);
  auto submitted = std::make_shared<const json::Document>(
      state::make_submitted_record(spec.reqid, spec.script, spec.async, res.refs, names, unix_now(),
                                   submitter, e.api.runs().instance()));
  auto entry = std::make_shared<state::IdempotencyEntry>();
  if (keyed) {
    *entry = {keyed->key, keyed->scope, spec.reqid, spec.async, keyed->request, {}, {}};
    e.api.runs().inflight[keyed->path] = {spec.reqid, spec.async, keyed->request};
  }
  // What the thread pool found: whether this request owns the key.
  enum class Claim { none, won, lost };
  auto claim = std::make_shared<Claim>(Claim::none);
  // With a shared state store (ours, issue 17) a run whose record cannot be written is not
  // dispatched: the instances share nothing else, so no run may exist without one.
  auto unrecorded = std::make_shared<Status>();
  std::weak_ptr<Exchange> weak = e.shared_from_this();
  event::queue_work(
      e.api.loop(),
      [submitted, spec, keyed, entry, claim, unrecorded] {
        state::RunStore store = run_store();
        if (Status st = store.save(spec.reqid, *submitted); !st.ok()) {
          log::warning("run-store-fail", {{"ERROR", st.message()}, {"REQID", spec.reqid}});
          if (state::shared_kv()) {
            *unrecorded = st;
            return;
          }
        }
        if (!keyed) return;
        state::IdempotencyIndex index(paths::runs_dir());
        (void)index.purge(unix_now());
        auto won = index.claim(*entry, unix_now());
        if (!won.ok()) {
          // Without the index the run still goes on, as with any store failure.
          log::warning("run-store-fail", {{"ERROR", won.message()}, {"REQID", spec.reqid}});
          return;
        }
        *claim = *won ? Claim::won : Claim::lost;
        // Another request (of another API process) claimed the key first: this run never
        // happens, and leaves no record.
        if (*claim == Claim::lost) (void)store.erase(spec.reqid);
      },
      [weak, in, keyed, claim, locks, spec, submitter, entry, unrecorded, refs = res.refs,
       targets = res.hosts] {
        auto x = weak.lock();
        if (!x) return; // the API stopped: the submitted record says so
        if (!unrecorded->ok()) {
          locks->held.release();
          if (keyed) x->api.runs().inflight.erase(keyed->path);
          return x->fail(503, "state unavailable", unrecorded->message());
        }
        if (*claim == Claim::lost) {
          locks->held.release();
          x->api.runs().inflight.erase(keyed->path);
          return run_keyed(*x, in, keyed);
        }
        engine::Engine* eng = &x->api.engine(); // owned by the Api, which outlives its runs
        engine::LiveFns live = in->stream ? stream_events(*x) : engine::LiveFns{};
        Status st = eng->run(
            targets, spec,
            [weak, eng, refs, spec, submitter, locks, keyed, entry, claim](Results results) {
              locks->held.release();
              std::string array = engine::results_json_array(results);
              json::Document list = engine::results_document(results);
              auto record = std::make_shared<const json::Document>(
                  spec.async ? state::make_async_record(spec.reqid, spec.script, list, unix_now(),
                                                        submitter)
                             : state::make_sync_record(spec.reqid, spec.script, refs, list,
                                                       unix_now(), submitter));
              json::Writer head;
              head.begin_object().member("ok", true).member("reqid", spec.reqid);
              if (spec.async) head.member("async", true);
              head.key("results").raw(array).end_object();
              entry->code = spec.async ? 202 : 200;
              entry->answer = head.str();
              // Stored even when the client has gone, and answered once on disk, so that a
              // GET /status, or a repeat of the key, right after finds it.
              event::queue_work(
                  eng->loop(),
                  [record, spec, entry, claim] {
                    if (Status st = run_store().save(spec.reqid, *record); !st.ok())
                      log::warning("run-store-fail",
                                   {{"ERROR", st.message()}, {"REQID", spec.reqid}});
                    if (*claim != Claim::won) return;
                    if (Status st =
                            state::IdempotencyIndex(paths::runs_dir()).record_answer(*entry);
                        !st.ok())
                      log::warning("run-store-fail",
                                   {{"ERROR", st.message()}, {"REQID", spec.reqid}});
                  },
                  [weak, keyed, entry] {
                    auto ex2 = weak.lock();
                    if (!ex2) return;
                    if (keyed) ex2->api.runs().inflight.erase(keyed->path);
                    ex2->respond(*entry->code, *entry->answer); // a stream's summary
                  });
            },
            std::move(live));
        // Nothing has arrived yet: the loop has not run since.
        if (st.ok() && in->stream) x->begin_stream();
        if (!st.ok()) {
          // Nothing was dispatched: the record and the key's claim go, so a retry can run.
          if (keyed) x->api.runs().inflight.erase(keyed->path);
          event::queue_work(
              x->api.loop(),
              [reqid = spec.reqid, entry, claim] {
                (void)run_store().erase(reqid);
                if (*claim == Claim::won) state::IdempotencyIndex(paths::runs_dir()).forget(*entry);
              },
              [] {});
          engine_failure(*x, st);
        }
      });
}

// A batched /run: each batch is a run of its own, as one /run would be (auth hook, locks, a
// `submitted` record before any agent is contacted, then the final record).
void run_batches(Exchange& ex, std::shared_ptr<RunInput> in, Planned planned) {
  hook::Request auth = request_for("run", {}, in->username, in->token);
  auth.script = in->script;
  auth.args = in->args;
  auth.tags = in->target.tags;
  auto kind = in->async ? engine::RolloutKind::run_async : engine::RolloutKind::run_sync;
  engine::Engine* eng = &ex.api.engine(); // owned by the Api, which outlives its exchanges
  hook::Submitter submitter{in->username, ex.peer_ip};
  std::string instance = ex.api.runs().instance();
  engine::LiveFns live = in->stream ? stream_events(ex) : engine::LiveFns{};
  roll_out(
      ex, kind, in->script, std::move(auth), std::move(planned), in->target, in->async ? 202 : 200,
      [eng, in, kind, submitter, instance,
       live](const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
             const std::vector<std::string>& refs, std::function<void(engine::BatchOutcome)> done) {
        auto locks = std::make_shared<state::Acquisition>(
            state::Locks(paths::locks_dir()).acquire(refs, in->script));
        if (auto refused = engine::lock_refusal(*locks, kind, in->script, batch))
          return done(std::move(*refused));
        engine::RunSpec spec;
        spec.script = in->script;
        spec.args = in->args;
        spec.reqid = reqid;
        spec.username = in->username;
        spec.token = in->token;
        spec.async = in->async;
        std::vector<std::string> names;
        for (const auto& t : batch)
          names.push_back(t.name);
        auto submitted = std::make_shared<const json::Document>(state::make_submitted_record(
            reqid, spec.script, spec.async, refs, names, unix_now(), submitter, instance));
        event::queue_work(
            eng->loop(),
            [submitted, reqid] {
              if (Status st = run_store().save(reqid, *submitted); !st.ok())
                log::warning("run-store-fail", {{"ERROR", st.message()}, {"REQID", reqid}});
            },
            [eng, spec, batch, refs, submitter, locks, kind, done, live] {
              Status st = eng->run(
                  batch, spec,
                  [eng, spec, refs, submitter, locks, done](Results results) {
                    locks->held.release();
                    json::Document list = engine::results_document(results);
                    auto record = std::make_shared<const json::Document>(
                        spec.async ? state::make_async_record(spec.reqid, spec.script, list,
                                                              unix_now(), submitter)
                                   : state::make_sync_record(spec.reqid, spec.script, refs, list,
                                                             unix_now(), submitter));
                    auto shared = std::make_shared<Results>(std::move(results));
                    event::queue_work(
                        eng->loop(),
                        [record, reqid = spec.reqid] {
                          if (Status st = run_store().save(reqid, *record); !st.ok())
                            log::warning("run-store-fail",
                                         {{"ERROR", st.message()}, {"REQID", reqid}});
                        },
                        [shared, done] {
                          done({std::move(*shared), ""});
                        });
                  },
                  live);
              if (st.ok()) return;
              locks->held.release();
              (void)run_store().erase(spec.reqid);
              done(engine::refused_batch(kind, spec.script, batch, engine::HostState::error,
                                         st.message(), st.message()));
            });
      },
      in->stream);
}

} // namespace

void handle_run(Exchange& ex) {
  auto body = parse_body_object(ex.body);
  if (!body.ok()) return ex.fail(400, "bad request", body.message());
  auto parsed = read_run(*body);
  if (!parsed.ok()) return ex.fail(400, "bad request", parsed.message());
  if (!ex.idempotency_key.ok()) return ex.fail(400, "bad request", ex.idempotency_key.message());
  auto in = std::make_shared<RunInput>(std::move(*parsed));
  std::shared_ptr<KeyedRun> keyed;
  // A repeat of a keyed run is answered from its stored answer, which a stream cannot be.
  if (*ex.idempotency_key && in->stream)
    return ex.fail(400, "bad request", "an Idempotency-Key cannot be used with stream");
  if (const auto& key = *ex.idempotency_key) {
    keyed = std::make_shared<KeyedRun>();
    keyed->key = *key;
    keyed->scope = state::idempotency_scope(in->username, in->token);
    keyed->request = request_text(*in);
    keyed->path = state::IdempotencyIndex(paths::runs_dir()).entry_path(keyed->scope, keyed->key);
  }
  if (!in->target.plain()) {
    if (keyed && in->target.rollout.batched())
      return ex.fail(400, "bad request", "an Idempotency-Key cannot be used with batch");
    auto planned = plan_or_fail(ex, in->hosts, in->target);
    if (!planned) return;
    if (in->target.rollout.batched()) return run_batches(ex, in, std::move(*planned));
    // One run of the selection, exactly as a /run naming those hosts.
    in->hosts = planned->selection.resolution.refs;
  }
  hook::Request auth = request_for("run", in->hosts, in->username, in->token);
  auth.script = in->script;
  auth.args = in->args;
  auth.tags = in->target.tags;
  ex.authorize(std::move(auth), [in, keyed](Exchange& e, const hook::Decision& d) {
    if (!d.allowed) return e.deny(d);
    if (keyed) return run_keyed(e, in, keyed);
    dispatch_run(e, in, nullptr);
  });
}

void handle_discovery(Exchange& ex) {
  auto in = read_discovery(ex.body);
  if (!in.ok()) return ex.fail(400, "bad request", in.message());
  std::vector<std::string> hosts = in->hosts;
  if (hosts.empty()) {
    hosts = ex.api.registry().list_hostnames();
    if (hosts.empty()) return ex.respond(200, "{\"ok\":true,\"hosts\":{}}");
  }
  ex.authorize(request_for("ping", hosts, in->username, in->token),
               [hosts](Exchange& e, const hook::Decision& d) {
                 if (!d.allowed) return e.deny(d);
                 auto res = e.api.registry().resolve_dispatch(hosts);
                 if (!res.ok) return unresolved(e, res);
                 // Every agent of a large registry is asked, in batches of the host cap.
                 if (Status st = e.api.engine().init(); !st.ok()) return engine_failure(e, st);
                 engine::Engine& eng = e.api.engine();
                 engine::run_batched(
                     std::make_shared<std::vector<state::DispatchTarget>>(res.hosts), 0,
                     [&eng](const std::vector<state::DispatchTarget>& b, engine::ResultsFn d) {
                       return eng.capabilities(b, std::move(d));
                     },
                     std::make_shared<Results>(), e.guard([](Exchange& e2, Results results) {
                       json::Writer w;
                       w.begin_object().member("ok", true).key("hosts").begin_object();
                       for (const auto& r : results)
                         w.key(r.name).value(r.doc);
                       w.end_object().end_object();
                       // The registry caches each agent's tags (best effort), before the
                       // answer, so that a selection right after sees them.
                       auto answer = std::make_shared<std::string>(w.str());
                       e2.api.engine().refresh_tags(
                           results, e2.guard([answer](Exchange& e3) { e3.respond(200, *answer); }));
                     }));
               });
}

void handle_status(Exchange& ex) {
  const std::string reqid = ex.param;
  state::RunStore store = run_store();
  store.purge(unix_now());
  const std::string not_found = "no result for reqid " + reqid;
  auto fetched = store.fetch(reqid);
  if (!fetched.ok()) return ex.fail(503, "state unavailable", fetched.message());
  auto record = std::move(*fetched);
  if (!record) return ex.fail(404, "not found", not_found);

  // The owner check comes before any agent is asked, so a refused caller causes no traffic
  // (the original aggregated first; the answers are the same).
  hook::Request auth;
  auth.action = "status";
  auth.reqid = reqid;
  auth.token = ex.bearer;
  if (const json::Value* s = json::find(*record, "submitter"); s && s->IsObject())
    auth.submitter = hook::Submitter{engine::string_member(*s, "username").value_or(""),
                                     engine::string_member(*s, "source_ip").value_or("")};
  ex.authorize(std::move(auth), [reqid, not_found, store](Exchange& e, const hook::Decision& d) {
    if (!d.allowed) return e.fail(404, "not found", not_found);
    engine::aggregate_run(e.api.engine(), store, reqid,
                          e.guard([not_found](Exchange& e2, std::optional<json::Document> rec) {
                            if (!rec) return e2.fail(404, "not found", not_found);
                            json::Writer w;
                            w.begin_object().member("ok", true);
                            for (const auto& m : rec->GetObject()) {
                              std::string_view k(m.name.GetString(), m.name.GetStringLength());
                              // `api` names the API process of a submitted record: ours.
                              if (k == "ok" || k == "submitter" || k == "api") continue;
                              w.key(k).value(m.value);
                            }
                            w.end_object();
                            e2.respond(200, w.str());
                          }));
  });
}

void handle_openapi_live(Exchange& ex) {
  std::vector<std::string> names = ex.api.registry().list_hostnames();
  if (names.empty()) return ex.respond(200, live_document({}, {}, unix_now()));
  auto res = ex.api.registry().resolve_dispatch(names);
  // Names whose record cannot be read are left out of the fleet rather than failing the page.
  std::vector<state::DispatchTarget> targets = res.hosts;
  if (!res.ok) {
    targets.clear();
    for (const auto& n : names)
      if (auto one = ex.api.registry().resolve_dispatch({n}); one.ok)
        targets.push_back(one.hosts.front());
  }
  auto batch = std::make_shared<std::vector<state::DispatchTarget>>(std::move(targets));
  if (Status st = ex.api.engine().init(); !st.ok()) return engine_failure(ex, st);
  engine::Engine& eng = ex.api.engine();
  engine::run_batched(
      batch, 0,
      [&eng](const std::vector<state::DispatchTarget>& b, engine::ResultsFn d) {
        return eng.capabilities(b, std::move(d));
      },
      std::make_shared<Results>(), ex.guard([names](Exchange& e, Results results) {
        std::vector<const json::Value*> caps;
        for (const auto& r : results)
          caps.push_back(&r.doc);
        e.respond(200, live_document(names, caps, unix_now()));
      }));
}

} // namespace cx::api
