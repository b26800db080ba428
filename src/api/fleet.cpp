// The API routes that reach agents (dispatcher-and-api §6.5): /ping, /run, /discovery,
// /status/{reqid} and /openapi-live.json, on the shared engine. Each answers exactly once
// through its Exchange; work whose outcome must last (a run and its stored record) completes
// even when the client has gone.
#include <memory>

#include "api/api.hpp"
#include "api/handlers.hpp"
#include "api/openapi.hpp"
#include "api/request.hpp"
#include "base/paths.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "engine/result.hpp"
#include "engine/runs.hpp"
#include "log/log.hpp"
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

} // namespace

void handle_ping(Exchange& ex) {
  auto body = parse_body_object(ex.body);
  if (!body.ok()) return ex.fail(400, "bad request", body.message());
  auto in = read_ping(*body);
  if (!in.ok()) return ex.fail(400, "bad request", in.message());
  auto hosts = in->hosts;
  ex.authorize(request_for("ping", in->hosts, in->username, in->token),
               [hosts](Exchange& e, const hook::Decision& d) {
                 if (!d.allowed) return e.deny(d);
                 auto res = e.api.registry().resolve_dispatch(hosts);
                 if (!res.ok) return unknown_agents(e, res.unknown);
                 Status st = e.api.engine().ping(
                     res.hosts, new_reqid(), false, e.guard([](Exchange& e2, Results results) {
                       e2.respond(200, "{\"ok\":true,\"results\":" +
                                           engine::results_json_array(results) + "}");
                     }));
                 if (!st.ok()) engine_failure(e, st);
               });
}

void handle_run(Exchange& ex) {
  auto body = parse_body_object(ex.body);
  if (!body.ok()) return ex.fail(400, "bad request", body.message());
  auto parsed = read_run(*body);
  if (!parsed.ok()) return ex.fail(400, "bad request", parsed.message());
  auto in = std::make_shared<RunInput>(std::move(*parsed));
  hook::Request auth = request_for("run", in->hosts, in->username, in->token);
  auth.script = in->script;
  auth.args = in->args;
  ex.authorize(std::move(auth), [in](Exchange& e, const hook::Decision& d) {
    if (!d.allowed) return e.deny(d);
    // Held for the whole dispatch (docs/COMPATIBILITY.md); released when the run completes.
    auto locks = std::make_shared<state::Acquisition>(
        state::Locks(paths::locks_dir()).acquire(in->hosts, in->script));
    if (!locks->status.ok()) return e.fail(500, "server error", locks->status.message());
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
    if (!res.ok) return unknown_agents(e, res.unknown);

    engine::RunSpec spec;
    spec.script = in->script;
    spec.args = in->args;
    spec.reqid = new_reqid();
    spec.username = in->username;
    spec.token = in->token;
    spec.async = in->async;
    hook::Submitter submitter{in->username, e.peer_ip};
    // The run goes on, and is stored, even if the client disconnects meanwhile.
    e.survive_disconnect();
    std::weak_ptr<Exchange> weak = e.shared_from_this();
    engine::Engine* eng = &e.api.engine(); // owned by the Api, which outlives its runs
    Status st = eng->run(
        res.hosts, spec, [weak, eng, refs = res.refs, spec, submitter, locks](Results results) {
          locks->held.release();
          std::string array = engine::results_json_array(results);
          json::Document list = engine::results_document(results);
          auto record = std::make_shared<const json::Document>(
              spec.async
                  ? state::make_async_record(spec.reqid, spec.script, list, unix_now(), submitter)
                  : state::make_sync_record(spec.reqid, spec.script, refs, list, unix_now(),
                                            submitter));
          // Stored even when the client has gone; answered once the record is on disk, so a
          // GET /status right after finds it.
          engine::store_record(eng->loop(), run_store(), spec.reqid, record, [weak, spec, array] {
            auto ex2 = weak.lock();
            if (!ex2) return;
            json::Writer head;
            head.begin_object().member("ok", true).member("reqid", spec.reqid);
            if (spec.async) head.member("async", true);
            head.key("results").raw(array).end_object();
            ex2->respond(spec.async ? 202 : 200, head.str());
          });
        });
    if (!st.ok()) engine_failure(e, st);
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
                 if (!res.ok) return unknown_agents(e, res.unknown);
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
                       for (const auto& r : results) {
                         w.key(r.name).value(r.doc);
                         // The registry caches each agent's tags (best effort).
                         if (engine::string_member(r.doc, "status") != "ok") continue;
                         const json::Value* tags = json::find(r.doc, "tags");
                         if (!tags || !tags->IsObject()) continue;
                         std::map<std::string, std::string> t;
                         for (const auto& m : tags->GetObject())
                           if (auto v = json::scalar_string(m.value))
                             t[std::string(m.name.GetString(), m.name.GetStringLength())] = *v;
                         (void)e2.api.registry().update_tags(r.name, t);
                       }
                       w.end_object().end_object();
                       e2.respond(200, w.str());
                     }));
               });
}

void handle_status(Exchange& ex) {
  const std::string reqid = ex.param;
  state::RunStore store = run_store();
  store.purge(unix_now());
  const std::string not_found = "no result for reqid " + reqid;
  auto record = store.load(reqid);
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
                              if (k == "ok" || k == "submitter") continue;
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
