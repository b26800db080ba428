// The dispatcher commands built on the engine (dispatcher-and-api §4.2-§4.7, §4.16-§4.18): each
// loads what it needs, runs its exchanges on one event loop and prints exactly what the
// original prints, with its exit codes.
#include "engine/commands.hpp"

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/exit_codes.hpp"
#include "base/hostname.hpp"
#include "base/paths.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "cli/cli.hpp"
#include "engine/engine.hpp"
#include "engine/follow.hpp"
#include "engine/format.hpp"
#include "engine/progress.hpp"
#include "engine/rollout.hpp"
#include "engine/rotation.hpp"
#include "engine/runs.hpp"
#include "hook/hook.hpp"
#include "log/log.hpp"
#include "state/dump.hpp"
#include "state/kv.hpp"
#include "state/locks.hpp"
#include "state/rotation.hpp"
#include "state/run_store.hpp"
#include "json/writer.hpp"

namespace cx::engine {

namespace {

using cli::die;
using cli::DispatcherArgs;
using cli::out;

// Everything a command that talks to agents needs: the loop, the engine with the CLI's file
// session cache, and the auth policy.
struct Session {
  event::Loop loop;
  conf::DispatcherConfig config;
  std::shared_ptr<FileSessionStore> sessions;
  std::unique_ptr<Engine> engine;

  Session(conf::DispatcherConfig c, const DispatcherArgs& a) : config(std::move(c)) {
    sessions = std::make_shared<FileSessionStore>(paths::tls_session_cache());
    engine = std::make_unique<Engine>(loop, config, sessions, a.port.value_or(0));
    engine->set_file_work_inline(true);
  }
  ~Session() {
    engine.reset();
    if (Status st = sessions->save(); !st.ok())
      log::warning("session-cache-fail", {{"ERROR", st.message()}});
  }

  hook::Policy policy() const {
    hook::Policy p;
    p.hook_path = config.auth_hook.value_or("");
    p.timeout_s = static_cast<unsigned>(std::max<int64_t>(0, config.auth_hook_timeout));
    p.caller = hook::Caller::cli;
    return p;
  }

  // Runs the auth hook to completion.
  hook::Decision authorize(hook::Request req) {
    req.source_ip = "127.0.0.1";
    hook::Decision decision;
    auto check = hook::Check::start(loop, policy(), std::move(req),
                                    [&decision](hook::Decision d) { decision = std::move(d); });
    loop.run();
    return decision;
  }
};

int denied(const hook::Decision& d, bool json) {
  if (json) {
    json::Writer w;
    w.begin_object().member("ok", 0).member("error", d.reason).member("code", d.code).end_object();
    out(w.str() + "\n");
  } else {
    std::fprintf(stderr, "Denied: %s\n", d.reason.c_str());
  }
  return kExitFailure;
}

// The registry could not be read (the shared store is down), or names are not in it.
int unresolved(const state::DispatchResolution& res);

int unknown_agents(const std::vector<std::string>& unknown) {
  std::fprintf(stderr,
               "Error: unknown agent%s: %s\n"
               "Only registered agents can be addressed - run 'ctrl-exec-dispatcher "
               "list-agents' to see them.\n",
               unknown.size() > 1 ? "s" : "", join(unknown, ", ").c_str());
  return kExitUnknownAgent;
}

int unresolved(const state::DispatchResolution& res) {
  if (!res.error.empty()) return die("Error: " + res.error);
  return unknown_agents(res.unknown);
}

std::vector<const json::Value*> docs(const Results& results) {
  std::vector<const json::Value*> v;
  for (const auto& r : results)
    v.push_back(&r.doc);
  return v;
}

// {"ok":1,["reqid":R,]"results":[...]}
std::string results_json(const Results& results, const std::string& reqid = {}) {
  json::Writer w;
  w.begin_object().member("ok", 1);
  if (!reqid.empty()) w.member("reqid", reqid);
  w.key("results").raw(results_json_array(results)).end_object();
  return w.str() + "\n";
}

// {"ok":1, ...record}
std::string record_json(const json::Value& record) {
  json::Writer w;
  w.begin_object().member("ok", 1);
  for (const auto& m : record.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    if (k == "ok") continue;
    w.key(k).value(m.value);
  }
  w.end_object();
  return w.str() + "\n";
}

int not_found(const std::string& reqid, bool json) {
  if (json) {
    json::Writer w;
    w.begin_object()
        .member("ok", 0)
        .member("error", "not found")
        .member("reqid", reqid)
        .end_object();
    out(w.str() + "\n");
  } else {
    std::fprintf(stderr, "No such request: %s\n", reqid.c_str());
  }
  return kExitFailure;
}

// The `wait` exit code of a complete record: 1 if any host failed. A sync record (API
// submitted) is judged by its results' exits; the original crashed on it (§4.5 QUIRK).
bool any_failed(const json::Value& record) {
  // An API run whose outcome was never recorded cannot be called a success.
  if (state::run_state(record) == state::kRunUnknown) return true;
  if (state::is_sync_record(record)) {
    for (const auto& r : json::find(record, "results")->GetArray())
      if (int_member(r, "exit", -1) != 0) return true;
    return false;
  }
  const json::Value* hosts = json::find(record, "hosts");
  if (!hosts || !hosts->IsObject()) return false;
  for (const auto& m : hosts->GetObject())
    if (state::host_failed(m.value)) return true;
  return false;
}

} // namespace

namespace {

// --tags and the rollout options of run and ping (ours; docs/COMPATIBILITY.md).
struct Targeting {
  std::optional<state::TagFilter> tags;
  RolloutOptions rollout;
  bool plain() const { return !tags && !rollout.batched(); }
};

// Reads them; on an error prints it and sets `exit_code`.
std::optional<Targeting> read_targeting(const DispatcherArgs& a, int& exit_code) {
  Targeting t;
  auto fail = [&](const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    exit_code = kExitUsage;
    return std::nullopt;
  };
  if (a.tags) {
    auto f = state::parse_tag_filter(*a.tags);
    if (!f.ok()) return fail("Invalid --tags filter: " + f.message());
    t.tags = std::move(*f);
  }
  if (a.batch) {
    auto b = parse_batch_size(*a.batch);
    if (!b.ok()) return fail("Invalid --batch: " + b.message());
    t.rollout.batch = *b;
  }
  if (a.batch_wait) {
    auto w = parse_batch_wait(*a.batch_wait);
    if (!w.ok()) return fail("Invalid --batch-wait: " + w.message());
    t.rollout.wait_s = *w;
    if (!a.batch) return fail("--batch-wait needs --batch");
  }
  if (a.max_failures) {
    auto m = parse_failure_limit(*a.max_failures);
    if (!m.ok()) return fail("Invalid --max-failures: " + m.message());
    t.rollout.max_failures = *m;
  }
  if (Status st = check_rollout(t.rollout, "--batch", "--batch-wait", "--max-failures"); !st.ok())
    return fail(st.message());
  return t;
}

int no_tag_match(const state::TagFilter& tags) {
  std::string selector = hook::tags_text(tags);
  std::fprintf(stderr,
               "Error: no agent matches tags: %s\n"
               "Only registered agents can be addressed - run 'ctrl-exec-dispatcher "
               "list-agents --tags %s' to see them.\n",
               selector.c_str(), selector.c_str());
  return kExitUnknownAgent;
}

// The selection of a run or ping with a tag selector or batches: explicit hosts and tag
// matches, resolved before the auth hook so that it sees every host. Prints the error and
// sets `exit_code` when the selection cannot be made.
std::optional<Selection> select_or_fail(Session& s, const std::vector<std::string>& hosts,
                                        const Targeting& t, int& exit_code) {
  Selection sel = select_hosts(s.engine->registry(), hosts, t.tags);
  if (!sel.resolution.ok) {
    exit_code = unresolved(sel.resolution);
    return std::nullopt;
  }
  if (sel.no_tag_match) {
    exit_code = no_tag_match(*t.tags);
    return std::nullopt;
  }
  return sel;
}

std::vector<std::string> names_of(const std::vector<state::DispatchTarget>& targets) {
  std::vector<std::string> names;
  names.reserve(targets.size());
  for (const auto& t : targets)
    names.push_back(t.name);
  return names;
}

// The batches of a rollout, printed as each ends (human output), then the whole report.
struct RolloutPrinter {
  RolloutKind kind;
  bool json = false;
  size_t batches = 0;
  Progress* progress = nullptr;
  FollowPrinter* follow = nullptr; // --follow: output was shown as it came

  void batch(const BatchReport& b, const Results& results) const {
    if (follow) follow->batch(b);
    if (json) return;
    if (progress) progress->erase();
    std::string text = strprintf("=== batch %zu of %zu (%zu host%s) ===\n", b.number, batches,
                                 b.hosts.size(), b.hosts.size() == 1 ? "" : "s");
    if (b.state == "skipped") {
      for (const auto& h : b.hosts)
        text += "==> " + h + "  [SKIPPED]\n";
    } else if (kind == RolloutKind::ping) {
      text += format_ping_results(docs(results));
    } else if (kind == RolloutKind::run_async) {
      text += format_async_submit(b.reqid, docs(results));
    } else {
      text += format_run_results(docs(results), follow == nullptr);
    }
    out(text);
  }

  void end(const RolloutReport& report) const {
    if (!json) {
      if (!report.stopped.empty()) out("=== stopped: " + report.stopped + " ===\n");
      return;
    }
    json::Writer w;
    w.begin_object().member("ok", 1).key("results").raw(results_json_array(report.results));
    w.key("batches");
    write_batches(w, report.batches);
    if (!report.stopped.empty()) w.member("stopped", report.stopped);
    w.end_object();
    out(w.str() + "\n");
  }
};

// Runs a rollout on the session's loop and prints it. `step` runs one authorised batch.
using BatchStepFn = std::function<void(
    const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
    const std::vector<std::string>& refs, std::function<void(BatchOutcome)> done)>;

RolloutReport run_rollout(Session& s, const DispatcherArgs& a, RolloutKind kind,
                          const std::string& script, hook::Request auth, const Selection& sel,
                          std::vector<std::vector<state::DispatchTarget>> plan, const Targeting& t,
                          BatchStepFn step, FollowPrinter* follow = nullptr) {
  RefsByName refs_by_selected = refs_by_name(sel.resolution);
  size_t total = 0;
  for (const auto& b : plan)
    total += b.size();
  Progress progress(s.loop, *s.engine, kind == RolloutKind::ping ? "/ping" : "/run", kind, total,
                    !a.json && !follow);
  RolloutPrinter printer{kind, a.json, plan.size(), &progress, follow};
  std::vector<std::unique_ptr<hook::Check>> checks; // the batches' auth hooks
  hook::Policy policy = s.policy();
  auth.source_ip = "127.0.0.1";
  RolloutReport report;
  RolloutSpec spec{kind, script, t.rollout};
  start_rollout(
      s.loop, spec, std::move(plan),
      [&](size_t, const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
          std::function<void(BatchOutcome)> done) {
        hook::Request req = auth;
        req.hosts = refs_of(batch, refs_by_selected);
        auto refs = req.hosts;
        checks.push_back(hook::Check::start(
            s.loop, policy, std::move(req),
            [&, kind, script, reqid, batch, refs, done](hook::Decision d) {
              if (!d.allowed)
                return done(refused_batch(kind, script, batch, HostState::denied,
                                          "Denied: " + d.reason, "denied: " + d.reason));
              step(reqid, batch, refs, done);
            }));
      },
      [&](const BatchReport& b, const Results& r) { printer.batch(b, r); },
      [&](RolloutReport r) { report = std::move(r); });
  s.loop.run();
  progress.erase();
  printer.end(report);
  return report;
}

// One run of `targets` as the original runs it: auth hook, locks, resolution (unless the
// hosts were selected already), dispatch, output.
int run_once(Session& s, const DispatcherArgs& a, const std::string& script,
             const std::vector<std::string>& hosts, const Targeting& t,
             const std::optional<Selection>& selected) {
  hook::Request auth;
  auth.action = "run";
  auth.script = script;
  auth.hosts = hosts;
  auth.args = a.script_args;
  auth.username = a.username();
  auth.token = a.token();
  auth.tags = t.tags;
  if (auto d = s.authorize(auth); !d.allowed) return denied(d, a.json);

  // Held until the dispatch is over (docs/COMPATIBILITY.md: the original only tested them).
  state::Acquisition locks = state::Locks(paths::locks_dir()).acquire(hosts, script);
  if (!locks.status.ok()) return die("Cannot lock: " + locks.status.message());
  if (!locks.conflicts.empty()) {
    if (a.json) {
      json::Writer w;
      w.begin_object()
          .member("ok", 0)
          .member("error", "locked")
          .member("code", 4)
          .member("conflicts", locks.conflicts)
          .end_object();
      out(w.str() + "\n");
    } else {
      std::fprintf(stderr, "Locked: already running: %s\n", join(locks.conflicts, ", ").c_str());
    }
    return kExitFailure;
  }

  state::DispatchResolution res =
      selected ? selected->resolution : s.engine->registry().resolve_dispatch(hosts);
  if (!res.ok) return unresolved(res);

  RunSpec spec;
  spec.script = script;
  spec.args = a.script_args;
  spec.reqid = new_reqid();
  spec.username = a.username();
  spec.token = a.token();
  spec.async = a.async;
  // With a shared state store (ours, issue 17) the async run's record is written before any
  // agent is contacted, as the API does: other dispatchers see it at once, and a store that
  // cannot take it stops the run before it exists anywhere.
  if (spec.async && state::shared_kv()) {
    auto submitted = state::make_submitted_record(
        spec.reqid, script, true, res.refs, names_of(res.hosts), unix_now(), std::nullopt, "");
    if (Status st = state::RunStore(paths::runs_dir()).save(spec.reqid, submitted); !st.ok())
      return die("Error: cannot record the run: " + st.message());
  }
  Results results;
  std::optional<FollowPrinter> follow;
  if (a.follow) follow.emplace(names_of(res.hosts), a.json, follow_colour());
  {
    Progress progress(s.loop, *s.engine, "/run",
                      spec.async ? RolloutKind::run_async : RolloutKind::run_sync, res.hosts.size(),
                      !a.json && !follow);
    if (Status st = s.engine->run(
            res.hosts, spec, [&](Results r) { results = std::move(r); },
            follow ? follow->live() : LiveFns{});
        !st.ok())
      return die(st.message());
    s.loop.run();
  }
  locks.held.release();

  if (spec.async) {
    auto record = std::make_shared<const json::Document>(state::make_async_record(
        spec.reqid, script, results_document(results), unix_now(), std::nullopt));
    store_record(s.loop, state::RunStore(paths::runs_dir()), spec.reqid, record, nullptr);
    s.loop.run();
    out(a.json ? results_json(results, spec.reqid)
               : format_async_submit(spec.reqid, docs(results)));
    for (const auto& r : results)
      if (string_member(r.doc, "status") == "accepted") return 0;
    return kExitFailure;
  }
  out(a.json ? results_json(results) : format_run_results(docs(results), !follow));
  for (const auto& r : results)
    if (int_member(r.doc, "exit", -1) != 0) return kExitFailure;
  return 0;
}

} // namespace

int cmd_run(const DispatcherArgs& a) {
  if (a.follow && a.async)
    return die("Error: --follow shows a sync run's output; it cannot be used with --async",
               kExitUsage);
  int exit_code = 0;
  auto t = read_targeting(a, exit_code);
  if (!t) return exit_code;
  size_t total = a.words.size() + (a.has_dashdash ? 1 + a.script_args.size() : 0);
  if (total < (t->tags ? 1u : 2u))
    return die("Usage: ctrl-exec-dispatcher run <host>[:<port>] [<host>...] <script> "
               "[-- <arg>...]");
  if (a.words.size() < (t->tags ? 1u : 2u))
    return die(t->tags ? "Need a script name" : "Need at least one host and a script name");
  std::vector<std::string> hosts(a.words.begin(), a.words.end() - 1);
  const std::string script = a.words.back();
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  Session s(std::move(*config), a);
  if (t->plain()) return run_once(s, a, script, hosts, *t, std::nullopt);

  auto sel = select_or_fail(s, hosts, *t, exit_code);
  if (!sel) return exit_code;
  auto plan = plan_batches(sel->resolution.hosts, t->rollout);
  if (!plan.ok()) return die("Error: " + plan.message(), kExitUsage);
  if (!t->rollout.batched()) return run_once(s, a, script, sel->resolution.refs, *t, sel);

  RolloutKind kind = a.async ? RolloutKind::run_async : RolloutKind::run_sync;
  hook::Request auth;
  auth.action = "run";
  auth.script = script;
  auth.args = a.script_args;
  auth.username = a.username();
  auth.token = a.token();
  auth.tags = t->tags;
  RunSpec base;
  base.script = script;
  base.args = a.script_args;
  base.username = a.username();
  base.token = a.token();
  base.async = a.async;
  std::optional<FollowPrinter> follow;
  if (a.follow) follow.emplace(names_of(sel->resolution.hosts), a.json, follow_colour());
  LiveFns live = follow ? follow->live() : LiveFns{};
  RolloutReport report = run_rollout(
      s, a, kind, script, auth, *sel, std::move(*plan), *t,
      [&s, kind, base,
       live](const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
             const std::vector<std::string>& refs, std::function<void(BatchOutcome)> done) {
        auto locks = std::make_shared<state::Acquisition>(
            state::Locks(paths::locks_dir()).acquire(refs, base.script));
        if (auto refused = lock_refusal(*locks, kind, base.script, batch))
          return done(std::move(*refused));
        RunSpec spec = base;
        spec.reqid = reqid;
        Status st = s.engine->run(
            batch, spec,
            [&s, spec, locks, done](Results results) {
              locks->held.release();
              if (!spec.async) return done({std::move(results), ""});
              auto record = std::make_shared<const json::Document>(state::make_async_record(
                  spec.reqid, spec.script, results_document(results), unix_now(), std::nullopt));
              auto shared = std::make_shared<Results>(std::move(results));
              store_record(s.loop, state::RunStore(paths::runs_dir()), spec.reqid, record,
                           [shared, done] {
                             done({std::move(*shared), ""});
                           });
            },
            live);
        if (!st.ok()) {
          locks->held.release();
          done(refused_batch(kind, base.script, batch, HostState::error, st.message(),
                             st.message()));
        }
      },
      follow ? &*follow : nullptr);
  if (!report.stopped.empty()) return kExitFailure;
  if (kind == RolloutKind::run_async) {
    for (const auto& r : report.results)
      if (string_member(r.doc, "status") == "accepted") return 0;
    return kExitFailure;
  }
  for (const auto& r : report.results)
    if (int_member(r.doc, "exit", -1) != 0) return kExitFailure;
  return 0;
}

int cmd_ping(const DispatcherArgs& a) {
  int exit_code = 0;
  auto t = read_targeting(a, exit_code);
  if (!t) return exit_code;
  if (a.words.empty() && !t->tags)
    return die("Usage: ctrl-exec-dispatcher ping <host>[:<port>] [<host>...]");
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  Session s(std::move(*config), a);
  hook::Request auth;
  auth.action = "ping";
  auth.hosts = a.words;
  auth.username = a.username();
  auth.token = a.token();
  auth.tags = t->tags;

  std::optional<Selection> sel;
  std::vector<std::vector<state::DispatchTarget>> plan;
  if (!t->plain()) {
    sel = select_or_fail(s, a.words, *t, exit_code);
    if (!sel) return exit_code;
    auto p = plan_batches(sel->resolution.hosts, t->rollout);
    if (!p.ok()) return die("Error: " + p.message(), kExitUsage);
    plan = std::move(*p);
    auth.hosts = sel->resolution.refs;
  }
  if (t->rollout.batched()) {
    RolloutReport report =
        run_rollout(s, a, RolloutKind::ping, "", auth, *sel, std::move(plan), *t,
                    [&s](const std::string& reqid, const std::vector<state::DispatchTarget>& batch,
                         const std::vector<std::string>&, std::function<void(BatchOutcome)> done) {
                      Status st = s.engine->ping(batch, reqid, true, [done](Results r) {
                        done({std::move(r), ""});
                      });
                      if (!st.ok())
                        done(refused_batch(RolloutKind::ping, "", batch, HostState::error,
                                           st.message(), st.message()));
                    });
    return report.stopped.empty() ? 0 : kExitFailure;
  }

  if (auto d = s.authorize(auth); !d.allowed) return denied(d, a.json);
  state::DispatchResolution res =
      sel ? sel->resolution : s.engine->registry().resolve_dispatch(a.words);
  if (!res.ok) return unresolved(res);
  Results results;
  {
    Progress progress(s.loop, *s.engine, "/ping", RolloutKind::ping, res.hosts.size(), !a.json);
    if (Status st = s.engine->ping(res.hosts, new_reqid(), true,
                                   [&](Results r) { results = std::move(r); });
        !st.ok())
      return die(st.message());
    s.loop.run();
  }
  out(a.json ? results_json(results) : format_ping_results(docs(results)));
  return 0; // whatever the hosts answered (§4.6)
}

namespace {

// One aggregation on the session's loop.
std::optional<json::Document> aggregate_once(Session& s, const std::string& reqid) {
  std::optional<json::Document> record;
  aggregate_run(*s.engine, state::RunStore(paths::runs_dir()), reqid,
                [&](std::optional<json::Document> r) { record = std::move(r); });
  s.loop.run();
  return record;
}

// `status` and `wait`: the run's record, aggregated again every 2 s until it is complete or
// `wait_s` seconds have passed (status: no wait), then printed as the original prints it.
int show_run(const DispatcherArgs& a, const char* usage, std::optional<int64_t> wait_s) {
  if (a.words.empty()) return die(usage);
  const std::string& reqid = a.words[0];
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  Session s(std::move(*config), a);
  const int64_t deadline = unix_now() + wait_s.value_or(0);
  std::optional<json::Document> record;
  for (;;) {
    record = aggregate_once(s, reqid);
    if (!record) return not_found(reqid, a.json);
    if (!wait_s || truthy_member(*record, "complete") || unix_now() >= deadline) break;
    event::Timer pause(s.loop);
    pause.start(2000, [] {});
    s.loop.run();
  }
  out(a.json ? record_json(*record) : format_status(*record));
  if (!wait_s) return 0;
  if (!truthy_member(*record, "complete")) return kExitIncomplete;
  return any_failed(*record) ? kExitFailure : kExitOk;
}

} // namespace

int cmd_status(const DispatcherArgs& a) {
  return show_run(a, "Usage: ctrl-exec-dispatcher status <reqid>", std::nullopt);
}

int cmd_wait(const DispatcherArgs& a) {
  return show_run(a, "Usage: ctrl-exec-dispatcher wait <reqid> [--timeout <seconds>]",
                  a.timeout.value_or(300));
}

// `ced state export [FILE]` / `ced state import FILE [--apply]` (ours, issue 17).
int cmd_state(const DispatcherArgs& a) {
  static const char* kUsage = "Usage: ctrl-exec-dispatcher state export [<file>]\n"
                              "       ctrl-exec-dispatcher state import <file> [--apply]";
  if (a.words.empty() || a.words.size() > 2) return die(kUsage, kExitUsage);
  const std::string& verb = a.words[0];
  if (verb != "export" && verb != "import") return die(kUsage, kExitUsage);
  if (verb == "import" && a.words.size() != 2) return die(kUsage, kExitUsage);
  if (a.apply && verb != "import") return die("Error: --apply is for state import", kExitUsage);
  auto config = cli::load_config(a.config_path, true);
  if (!config) return kExitFatal;
  state::StatePaths sp{config->registry_dir, paths::pairing_dir(), paths::runs_dir(),
                       config->rotation_file};
  std::string where = config->state_backend == "etcd"
                          ? "etcd " + config->etcd_endpoints
                          : "the files under " + paths::dispatcher_state();
  if (verb == "export") {
    auto doc = state::export_state(sp);
    if (!doc.ok()) return die("Cannot export the state from " + where + ": " + doc.message());
    if (a.words.size() == 1) {
      out(*doc + "\n");
      return 0;
    }
    WriteOptions opts;
    opts.mode = 0600; // run records hold submitters' names and the agents' output
    if (Status st = write_file_atomic(a.words[1], *doc + "\n", opts); !st.ok())
      return die("Cannot write '" + a.words[1] + "': " + st.message());
    std::fprintf(stderr, "State of %s written to %s\n", where.c_str(), a.words[1].c_str());
    return 0;
  }
  auto text = read_file(a.words[1], 1u << 30);
  if (!text.ok()) return die("Cannot import: " + text.message());
  auto rep = state::import_state(*text, sp, a.apply);
  if (!rep.ok())
    return die("Cannot import '" + a.words[1] + "' into " + where + ": " + rep.message());
  auto line = [](const char* what, const state::ImportTally& t) {
    return strprintf("%-18s %zu new, %zu changed, %zu unchanged\n", what, t.added, t.changed,
                     t.unchanged);
  };
  std::string s = (a.apply ? "Imported into " : "Dry run against ") + where + ":\n";
  s += line("agents:", rep->agents) + line("pairing requests:", rep->pairing) +
       line("runs:", rep->runs) + line("rotation state:", rep->rotation);
  if (!a.apply) s += "Nothing was written; add --apply to write the new and changed items.\n";
  out(s);
  return 0;
}

int cmd_list_locks(const DispatcherArgs& a) {
  // Without a config file the defaults apply (the files); with one, its state backend.
  if (path_exists(a.config_path) && !cli::load_config(a.config_path, true)) return kExitFatal;
  Status failure;
  auto held = state::Locks(paths::locks_dir()).list_held(&failure);
  if (!failure.ok()) return die("Error: " + failure.message());
  if (held.empty()) {
    out("No locks currently held.\n");
    return 0;
  }
  if (a.json) {
    json::Writer w;
    w.begin_object().member("ok", 1).key("locks").begin_array();
    for (const auto& l : held)
      w.begin_object().member("host", l.host).member("script", l.script).end_object();
    w.end_array().end_object();
    out(w.str() + "\n");
    return 0;
  }
  std::string s = strprintf("%-30s  %s\n", "HOST", "SCRIPT") + std::string(50, '-') + "\n";
  for (const auto& l : held)
    s += strprintf("%-30s  %s\n", l.host.c_str(), l.script.c_str());
  out(s);
  return 0;
}

int cmd_serial_status(const DispatcherArgs& a) {
  // The config says where the state is; without one the defaults apply (the files).
  conf::DispatcherConfig c = conf::make_dispatcher_config({}, short_hostname()).config;
  if (path_exists(a.config_path)) {
    auto loaded = cli::load_config(a.config_path, true);
    if (!loaded) return kExitFatal;
    c = std::move(*loaded);
  }
  auto st = state::load_rotation(c.rotation_file);
  std::optional<state::RotationState> rs;
  if (!st.ok())
    log::err("rotation-state-corrupt",
             {{"ERROR", st.message()}, {"PATH", c.rotation_file}, {"REASON", "unreadable"}});
  else
    rs = *st;
  std::string s;
  if (rs) {
    s += "Current serial:  " + (rs->current_serial.empty() ? "?" : rs->current_serial) + "\n";
    s += "Previous serial: " + rs->previous_serial.value_or("(none)") + "\n";
    s += "Rotated at:      " + (rs->rotated_at.empty() ? "?" : rs->rotated_at) + "\n";
    s += "Overlap expires: " + (rs->overlap_expires.empty() ? "?" : rs->overlap_expires) + "\n\n";
  } else {
    s += "No rotation has been performed.\n\n";
  }
  auto agents = state::Registry(c.registry_dir).list();
  if (!agents.ok()) {
    out(s);
    return die("Cannot access agent registry: " + agents.message());
  }
  if (agents->empty()) {
    out(s + "No registered agents.\n");
    return 0;
  }
  if (a.json) {
    json::Writer w;
    w.begin_object().key("state");
    if (rs)
      w.raw(state::rotation_json(*rs));
    else
      w.null();
    w.key("agents").begin_array();
    for (const auto& r : *agents)
      w.raw(state::agent_record_json(r));
    w.end_array().end_object();
    out(s + w.str() + "\n");
    return 0;
  }
  s += strprintf("%-30s  %-10s  %-24s  %s\n", "HOSTNAME", "STATUS", "CONFIRMED", "SERIAL");
  s += std::string(85, '-') + "\n";
  for (const auto& r : *agents) {
    std::string serial = r.dispatcher_serial.substr(0, 16);
    if (r.dispatcher_serial.size() > 16) serial += "...";
    s += strprintf("%-30s  %-10s  %-24s  %s\n", r.hostname.c_str(), r.serial_status.c_str(),
                   r.serial_confirmed.c_str(), serial.c_str());
  }
  out(s);
  return 0;
}

int cmd_maintain(const DispatcherArgs& a) {
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  Session s(std::move(*config), a);
  Engine& engine = *s.engine;
  auto phase_error = [](const char* phase, const std::string& e) {
    log::err("maintain", {{"ERROR", e}, {"PHASE", phase}});
  };

  std::vector<std::string> names;
  if (auto all = engine.registry().list(); all.ok())
    for (const auto& r : *all)
      names.push_back(r.hostname);
  size_t pinged = 0;
  if (!names.empty()) {
    state::DispatchResolution res = engine.registry().resolve_dispatch(names);
    if (!res.ok) {
      phase_error("ping",
                  res.error.empty() ? "unknown agents: " + join(res.unknown, ", ") : res.error);
    } else {
      auto targets = std::make_shared<std::vector<state::DispatchTarget>>(res.hosts);
      std::string reqid = new_reqid();
      Results results;
      run_batched(
          targets, 0,
          [&engine, reqid](const std::vector<state::DispatchTarget>& batch, ResultsFn d) {
            return engine.ping(batch, reqid, true, std::move(d));
          },
          std::make_shared<Results>(), [&](Results r) { results = std::move(r); });
      s.loop.run();
      pinged = results.size();
    }
  }

  if (auto r = check_and_rotate(s.config, unix_now()); !r.ok())
    phase_error("rotate", r.message());
  else if (*r)
    engine.reload_credentials();
  broadcast_serial(engine, [](std::vector<BroadcastResult>) {});
  s.loop.run();
  expire_stale_agents(s.config, unix_now());
  // Ours: the original retired the previous serial only from pairing-mode's check loop, so on
  // hosts that never run pairing mode it was never removed (docs/COMPATIBILITY.md).
  retire_previous_serial(engine, [] {});
  s.loop.run();
  state::RunStore(paths::runs_dir()).purge(unix_now());

  log::info("maintain",
            {{"AGENTS", std::to_string(names.size())}, {"PINGED", std::to_string(pinged)}});
  if (a.json) {
    json::Writer w;
    w.begin_object()
        .member("ok", 1)
        .member("agents", static_cast<int64_t>(names.size()))
        .member("pinged", static_cast<int64_t>(pinged))
        .end_object();
    out(w.str() + "\n");
  } else {
    out("Maintenance run: " + std::to_string(pinged) + "/" + std::to_string(names.size()) +
        " agents pinged, dispatcher cert checked.\n");
  }
  return 0;
}

int cmd_rotate_cert(const DispatcherArgs& a) {
  auto config = cli::load_config(a.config_path, false);
  if (!config) return kExitFatal;
  out("Rotating dispatcher certificate...\n");
  auto rotated = rotate_cert(*config, unix_now(), a.force);
  if (!rotated.ok()) return die("Rotation failed: " + rotated.message());
  out("New serial:      " + rotated->serial + "\n" +
      "Old serial:      " + (rotated->old_serial.empty() ? "(none)" : rotated->old_serial) + "\n" +
      "Overlap expires: " + rotated->overlap_expires + "\n" +
      "Agents pending:  " + std::to_string(rotated->agents_pending) + "\n");
  if (rotated->agents_pending == 0) return 0;

  out("\nBroadcasting new serial to agents...\n");
  Session s(std::move(*config), a);
  std::vector<BroadcastResult> report;
  broadcast_serial(*s.engine, [&](std::vector<BroadcastResult> r) { report = std::move(r); });
  s.loop.run();
  size_t ok = 0;
  for (const auto& r : report)
    ok += r.ok ? 1 : 0;
  std::string t = "  Updated: " + std::to_string(ok) +
                  "\n  Failed:  " + std::to_string(report.size() - ok) + "\n";
  if (ok < report.size()) {
    t += "\nAgents requiring attention:\n";
    for (const auto& r : report)
      if (!r.ok)
        t += strprintf("  %-30s  %s\n", r.hostname.c_str(),
                       r.error.empty() ? "failed" : r.error.c_str());
    t += "\nFailed agents will be retried automatically by the check loop.\n"
         "Agents offline longer than the overlap window will require re-pairing.\n";
  }
  out(t);
  return 0;
}

} // namespace cx::engine
