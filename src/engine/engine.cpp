// The dispatcher engine; see engine.hpp. Each exchange's result and log line follow
// dispatcher-and-api §5.4-§5.9 exactly; what differs on purpose is noted where it happens.
#include "engine/engine.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "base/paths.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "pki/ca_store.hpp"
#include "pki/cert.hpp"
#include "proto/agent_wire.hpp"
#include "state/scripts_cache.hpp"
#include "state/serials.hpp"
#include "json/writer.hpp"

namespace cx::engine {

namespace {

std::string connect_target(const AgentReply& r) {
  return r.host + ":" + std::to_string(r.port);
}

// How deeply `v` nests (a scalar is 1), stopping early once past `limit`.
size_t nesting(const json::Value& v, size_t limit) {
  if (limit == 0) return 1;
  size_t deepest = 0;
  if (v.IsObject()) {
    for (const auto& m : v.GetObject())
      deepest = std::max(deepest, nesting(m.value, limit - 1));
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray())
      deepest = std::max(deepest, nesting(e, limit - 1));
  }
  return deepest + 1;
}

// An agent's body is stored inside run records a few levels down; deeper than this it could be
// written but never parsed back.
constexpr size_t kMaxAgentBodyDepth = json::kMaxDepth - 8;

// The agent's JSON body as an object, or nullopt (not JSON, not an object, or nested too deep).
std::optional<json::Document> body_object(const AgentReply& r) {
  auto doc = json::parse(r.body);
  if (!doc.ok() || !doc->IsObject()) return std::nullopt;
  if (nesting(*doc, kMaxAgentBodyDepth + 1) > kMaxAgentBodyDepth) return std::nullopt;
  return std::move(*doc);
}

// An agent's answer read through its proto struct, leniently as the original reads it (a member
// of the wrong type counts as absent): the typed view the engine decides and logs by. The
// result itself passes the agent's JSON object through, every member and its order intact.
template <typename Reply> Reply read_reply(const json::Value& body) {
  auto r = Reply::from_json(body, proto::Reading::lenient);
  CX_CHECK(r.ok()); // the lenient reading fails only for a non-object, and bodies are objects
  return std::move(*r);
}

// The body of a 2xx answer as an object, or nullopt (no 2xx answer, or no usable body).
std::optional<json::Document> answer_body(const AgentReply& r) {
  if (!r.is_2xx()) return std::nullopt;
  return body_object(r);
}

// `body.error // status line`, for 403s.
std::string forbidden_text(const AgentReply& r) {
  if (auto doc = body_object(r))
    if (auto e = read_reply<proto::ErrorReply>(*doc).error) return "forbidden: " + *e; // "" kept
  return "forbidden: " + r.status_line();
}

// The operator's text for an exchange without a 2xx answer (the table of result.hpp).
std::string transport_text(const AgentReply& r) {
  return failure_text(r.failure(), r.host, r.port);
}

// Ours (docs/COMPATIBILITY.md): whether the exchange paid a full TLS handshake or resumed a
// session, on every success line, so the effect of the session cache is observable.
log::Field tls_field(const AgentReply& r) {
  return {"TLS", r.resumed ? "resumed" : "full"};
}

// An empty result for the exchange `reply` with `name`.
HostResult new_result(const std::string& name, const AgentReply& reply) {
  HostResult r;
  r.name = name;
  r.rtt_us = reply.rtt_us;
  return r;
}

// A failed exchange's result, {status:"error", error, rtt} and its state; callers add their own
// members, log, then canonicalize.
HostResult error_result(const std::string& name, const AgentReply& reply, const std::string& err) {
  HostResult r = new_result(name, reply);
  set_member(r.doc, "status", proto::kStatusError);
  set_member(r.doc, "error", err);
  set_member(r.doc, "rtt", format_rtt(reply.rtt_us));
  r.state = reply.is_2xx() ? HostState::error : failure_state(reply.failure().kind());
  return r;
}

// Which reqid a logged error result carries: none, in its log line, or also as a member.
enum class Reqid { none, logged, member };

// error_result, logged at ERR as `action` and canonicalised.
HostResult logged_error_result(const std::string& name, const AgentReply& reply,
                               const std::string& err, const char* action, Reqid with = Reqid::none,
                               const std::string& reqid = {}) {
  HostResult r = error_result(name, reply, err);
  if (with == Reqid::member) set_member(r.doc, "reqid", reqid);
  log::Fields fields{
      {"ERROR", err}, {"RTT", format_rtt(reply.rtt_us)}, {"TARGET", connect_target(reply)}};
  if (with != Reqid::none) fields.emplace_back("REQID", reqid);
  log::err(action, fields);
  canonicalize(r, std::nullopt);
  return r;
}

// The error text of an exchange without a usable answer (§5.5-§5.9): 403 as "forbidden: ..."
// where the endpoint reads it so, a 2xx that is not JSON, else the transport text.
std::string unusable_text(const AgentReply& reply, bool forbidden, const char* not_json) {
  if (forbidden && reply.status == 403) return forbidden_text(reply);
  if (reply.is_2xx()) return not_json;
  return transport_text(reply);
}

// A successful exchange's result: the agent's body plus rtt.
HostResult body_result(const std::string& name, const AgentReply& reply, json::Document body) {
  HostResult r = new_result(name, reply);
  r.doc = std::move(body);
  set_member(r.doc, "rtt", format_rtt(reply.rtt_us));
  r.state = HostState::ok;
  return r;
}

// The success line of `action` with its fields plus RTT, TARGET and TLS.
void log_answer(const char* action, const AgentReply& reply, log::Fields fields) {
  fields.emplace_back("RTT", format_rtt(reply.rtt_us));
  fields.emplace_back("TARGET", connect_target(reply));
  fields.push_back(tls_field(reply));
  log::info(action, fields);
}

} // namespace

json::Document results_document(const Results& results) {
  json::Document arr;
  arr.SetArray();
  for (const auto& r : results)
    arr.PushBack(json::Value(r.doc, arr.GetAllocator()), arr.GetAllocator());
  return arr;
}

std::string results_json_array(const Results& results) {
  json::Writer w;
  w.begin_array();
  for (const auto& r : results)
    w.value(r.doc);
  w.end_array();
  return w.str();
}

// --- Per-exchange results --------------------------------------------------------------------

HostResult run_result(const std::string& name, const AgentReply& reply, const RunSpec& spec,
                      int64_t read_timeout_s) {
  const std::string rtt = format_rtt(reply.rtt_us);
  const std::string target = connect_target(reply);
  const char* action = spec.async ? "run-async" : "run";
  HostResult r = new_result(name, reply);

  if (!reply.is_2xx()) {
    if (spec.async && reply.status == 409) {
      std::string err = std::string(proto::kAsyncBusy);
      if (auto doc = body_object(reply))
        if (auto e = read_reply<proto::AsyncReply>(*doc).error) err = *e;
      set_member(r.doc, "script", spec.script);
      set_member(r.doc, "status", proto::kStatusBusy);
      set_member(r.doc, "error", err);
      set_member(r.doc, "rtt", rtt);
      set_member(r.doc, "reqid", spec.reqid);
      r.state = HostState::busy;
      log::warning(action, {{"REQID", spec.reqid},
                            {"RTT", rtt},
                            {"SCRIPT", spec.script},
                            {"STATUS", std::string(proto::kStatusBusy)},
                            {"TARGET", target}});
      canonicalize(r, std::nullopt);
      return r;
    }
    std::string err;
    if (reply.status == 403)
      err = forbidden_text(reply);
    else if (reply.status == 413)
      err = "request too large";
    else if (reply.failure().kind() == ErrorKind::read_timeout)
      err = "read timeout after " + std::to_string(read_timeout_s) + "s";
    else
      err = transport_text(reply);
    set_member(r.doc, "script", spec.script);
    if (spec.async)
      set_member(r.doc, "status", proto::kStatusError);
    else
      set_member(r.doc, "exit", int64_t{-1});
    set_member(r.doc, "error", err);
    set_member(r.doc, "rtt", rtt);
    set_member(r.doc, "reqid", spec.reqid);
    r.state = failure_state(reply.failure().kind());
    log::err(action, {{"ERROR", err},
                      {"REQID", spec.reqid},
                      {"RTT", rtt},
                      {"SCRIPT", spec.script},
                      {"TARGET", target}});
    canonicalize(r, std::nullopt);
    return r;
  }

  auto body = body_object(reply);
  if (!spec.async) {
    proto::RunResult run; // exit -1
    if (body) {
      run = read_reply<proto::RunResult>(*body);
      r.doc = std::move(*body);
    } else {
      // Ours: an NDJSON stream that closed before its result line (the agent died mid-run).
      run.error = reply.streamed && reply.body.empty() ? "live output ended without a result"
                                                       : "invalid JSON response";
      set_member(r.doc, "exit", run.exit);
      set_member(r.doc, "error", *run.error);
    }
    set_member(r.doc, "rtt", rtt);
    if (!json::find(r.doc, "reqid")) set_member(r.doc, "reqid", spec.reqid);
    if (!run.error || run.error->empty())
      r.state = HostState::ok;
    else
      r.state = proto::is_not_authorised(*run.error) ? HostState::denied : HostState::error;
    log_answer(
        "run", reply,
        {{"EXIT", std::to_string(run.exit)}, {"REQID", spec.reqid}, {"SCRIPT", spec.script}});
  } else {
    proto::AsyncReply submitted;
    if (body) {
      submitted = read_reply<proto::AsyncReply>(*body);
      r.doc = std::move(*body);
    } else {
      submitted.status = proto::kStatusError;
      set_member(r.doc, "script", spec.script);
      set_member(r.doc, "status", submitted.status);
      set_member(r.doc, "error", "invalid JSON response");
    }
    set_member(r.doc, "rtt", rtt);
    if (!json::find(r.doc, "reqid")) set_member(r.doc, "reqid", spec.reqid);
    const std::string& status = submitted.status;
    // An agent refuses an async run as it refuses a sync one: 200 with the run's `error`,
    // "not authorised: ..." when its hook said no; that is denied, as for a sync run.
    bool denied = submitted.error && proto::is_not_authorised(*submitted.error);
    r.state = status == proto::kStatusAccepted ? HostState::ok
              : status == proto::kStatusBusy   ? HostState::busy
              : denied                         ? HostState::denied
                                               : HostState::error;
    log_answer("run-async", reply,
               {{"REQID", spec.reqid},
                {"SCRIPT", spec.script},
                {"STATUS", status.empty() ? std::string(proto::kStatusAccepted) : status}});
  }
  canonicalize(r, proto::reported_host(r.doc)); // still the agent's `host`
  return r;
}

HostResult ping_result(const std::string& name, const AgentReply& reply, const std::string& reqid) {
  std::optional<json::Document> body = answer_body(reply);
  if (!body) {
    std::string err =
        reply.status == 413 ? "request too large" : unusable_text(reply, true, "invalid JSON");
    return logged_error_result(name, reply, err, "ping", Reqid::logged, reqid);
  }
  HostResult r = body_result(name, reply, std::move(*body));
  log_answer("ping", reply, {{"REQID", reqid}, {"RESULT", "ok"}});
  canonicalize(r, proto::reported_host(r.doc));
  return r;
}

HostResult capabilities_result(const std::string& name, const AgentReply& reply) {
  std::optional<json::Document> body = answer_body(reply);
  if (!body) {
    // Every failure, 403 included, goes through the transport text only (§5.7).
    return logged_error_result(name, reply, unusable_text(reply, false, "invalid JSON"),
                               "capabilities");
  }
  auto caps = read_reply<proto::CapabilitiesReply>(*body);
  HostResult r = body_result(name, reply, std::move(*body));
  log_answer("capabilities", reply, {{"SCRIPTS", std::to_string(caps.scripts.size())}});
  canonicalize(r, proto::reported_host(r.doc));
  return r;
}

HostResult fetch_result(const std::string& name, const AgentReply& reply,
                        const std::string& reqid) {
  if (reply.status == 404) {
    HostResult r = new_result(name, reply);
    set_member(r.doc, "status", proto::kStatusUnknown);
    set_member(r.doc, "reqid", reqid);
    set_member(r.doc, "rtt", format_rtt(reply.rtt_us));
    r.state = HostState::ok;
    canonicalize(r, std::nullopt);
    return r;
  }
  std::optional<json::Document> body = answer_body(reply);
  if (!body) {
    return logged_error_result(name, reply, unusable_text(reply, true, "invalid JSON"), "result",
                               Reqid::member, reqid);
  }
  auto record = read_reply<proto::ResultRecord>(*body);
  HostResult r = body_result(name, reply, std::move(*body));
  if (!json::find(r.doc, "reqid")) set_member(r.doc, "reqid", reqid);
  log_answer("result", reply, {{"REQID", reqid}, {"STATUS", record.status}});
  canonicalize(r, proto::reported_host(r.doc));
  return r;
}

HostResult rotate_result(const std::string& name, const AgentReply& reply) {
  std::optional<json::Document> body = answer_body(reply);
  if (!body) {
    HostResult r = error_result(name, reply, unusable_text(reply, true, "invalid JSON response"));
    set_member(r.doc, "exit", int64_t{-1});
    canonicalize(r, std::nullopt);
    return r;
  }
  auto rotated = read_reply<proto::RotateReply>(*body);
  HostResult r = body_result(name, reply, std::move(*body));
  bool ok = rotated.status == proto::kStatusOk;
  if (!json::find(r.doc, "exit")) set_member(r.doc, "exit", int64_t{ok ? 0 : -1});
  r.state = ok ? HostState::ok : HostState::error;
  canonicalize(r, proto::reported_host(r.doc));
  return r;
}

bool renewal_due(std::string_view expiry, int64_t cert_days, int64_t now) {
  auto t = parse_openssl_time(expiry);
  if (!t) return false;
  // (cert_days / 2) days, in real arithmetic as the original: 365 gives 182.5 days.
  return static_cast<double>(*t - now) < static_cast<double>(cert_days) / 2.0 * 86400.0;
}

Selection select_hosts(const state::Registry& registry, const std::vector<std::string>& refs,
                       const std::optional<state::TagFilter>& tags) {
  Selection s;
  if (!refs.empty()) s.resolution = registry.resolve_dispatch(refs);
  if (!tags || !s.resolution.ok) return s;
  state::DispatchResolution matched = registry.resolve_tags(*tags);
  if (!matched.error.empty()) {
    s.resolution = std::move(matched); // the store failed: not "no match"
    return s;
  }
  if (matched.hosts.empty()) {
    s.no_tag_match = true;
    return s;
  }
  std::set<std::string> named;
  for (const auto& t : s.resolution.hosts)
    named.insert(t.name);
  for (size_t i = 0; i < matched.hosts.size(); ++i) {
    if (named.count(matched.hosts[i].name)) continue;
    s.resolution.hosts.push_back(matched.hosts[i]);
    s.resolution.refs.push_back(matched.refs[i]);
  }
  return s;
}

std::optional<std::map<std::string, std::string>> reported_tags(const HostResult& caps) {
  if (string_member(caps.doc, "status") != proto::kStatusOk) return std::nullopt;
  const json::Value* tags = json::find(caps.doc, "tags");
  if (!tags || !tags->IsObject()) return std::nullopt;
  std::map<std::string, std::string> t;
  for (const auto& m : tags->GetObject())
    if (auto v = json::scalar_string(m.value))
      t[std::string(m.name.GetString(), m.name.GetStringLength())] = *v;
  return t;
}

std::optional<std::vector<std::string>> reported_scripts(const HostResult& caps) {
  if (string_member(caps.doc, "status") != proto::kStatusOk) return std::nullopt;
  const json::Value* list = json::find(caps.doc, "scripts");
  if (!list || !list->IsArray()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& e : list->GetArray())
    if (auto n = e.IsObject() ? string_member(e, "name") : std::nullopt) names.push_back(*n);
  return names;
}

// --- The engine ------------------------------------------------------------------------------

struct Engine::Op : std::enable_shared_from_this<Engine::Op> {
  Engine* engine = nullptr;
  size_t count = 0;
  size_t next = 0;
  size_t active = 0;
  size_t limit = 1;
  bool pumping = false;
  bool over = false;
  StartFn start;
  ResultsFn done;
  Results results;
  std::map<size_t, std::unique_ptr<http::ClientCall>> calls;

  // Starts exchanges while there is room. Re-entered from completions, so guarded.
  void pump() {
    if (pumping || over) return;
    pumping = true;
    std::weak_ptr<Op> weak = weak_from_this();
    while (active < limit && next < count) {
      size_t i = next++;
      ++active;
      auto call = start(i, [weak, i](HostResult r) {
        if (auto o = weak.lock()) o->on_result(i, std::move(r));
      });
      if (call && !over) calls[i] = std::move(call);
    }
    pumping = false;
  }

  void on_result(size_t i, HostResult r) {
    if (over) return;
    results.push_back(std::move(r));
    --active;
    if (auto it = calls.find(i); it != calls.end()) {
      engine->loop_.defer_delete(std::move(it->second)); // never freed inside its callback
      calls.erase(it);
    }
    if (results.size() == count)
      complete();
    else
      pump();
  }

  void complete() {
    if (over) return;
    over = true;
    auto fn = std::move(done);
    Results out = std::move(results);
    engine->finished(this); // frees this op on a later iteration
    if (fn) fn(std::move(out));
  }
};

Engine::Engine(event::Loop& loop, const conf::DispatcherConfig& config,
               std::shared_ptr<SessionStore> sessions, int default_port)
    : loop_(loop), config_(config), sessions_(std::move(sessions)), default_port_(default_port),
      registry_(config_.registry_dir.empty() ? paths::registry_dir() : config_.registry_dir) {}

Engine::~Engine() {
  alive_.kill();
  renew_calls_.clear();
  ops_.clear();
}

Status Engine::init() {
  if (client_) return {};
  int64_t t = std::max<int64_t>(1, config_.read_timeout);
  CX_ASSIGN_OR_RETURN(client_, AgentClient::create(config_.cert, config_.key, config_.ca,
                                                   static_cast<uint64_t>(t) * 1000, sessions_,
                                                   paths::tls_pair_record()));
  return {};
}

AgentClientCounters Engine::client_counters() const {
  AgentClientCounters sum;
  auto add = [&sum](const AgentClient& c) {
    sum.calls += c.counters().calls;
    sum.full_handshakes += c.counters().full_handshakes;
    sum.resumed_handshakes += c.counters().resumed_handshakes;
  };
  if (client_) add(*client_);
  for (const auto& c : retired_clients_)
    add(*c);
  return sum;
}

void Engine::reload_credentials() {
  if (client_) retired_clients_.push_back(std::move(client_));
}

void run_batched(std::shared_ptr<std::vector<state::DispatchTarget>> targets, size_t from,
                 BatchStep step, std::shared_ptr<Results> acc, ResultsFn done) {
  if (from >= targets->size()) {
    done(std::move(*acc));
    return;
  }
  size_t to = std::min(targets->size(), from + kMaxHosts);
  std::vector<state::DispatchTarget> batch(targets->begin() + static_cast<long>(from),
                                           targets->begin() + static_cast<long>(to));
  Status st = step(batch, [targets, to, step, acc, done](Results r) {
    for (auto& x : r)
      acc->push_back(std::move(x));
    run_batched(targets, to, step, acc, done);
  });
  if (st.ok()) return;
  for (const auto& t : batch) {
    HostResult r;
    r.name = t.name;
    r.target = t.target;
    set_member(r.doc, "status", proto::kStatusError);
    set_member(r.doc, "exit", int64_t{-1});
    set_member(r.doc, "error", st.message());
    canonicalize(r, std::nullopt);
    acc->push_back(std::move(r));
  }
  run_batched(targets, to, step, acc, done);
}

void Engine::finished(Op* op) {
  for (auto it = ops_.begin(); it != ops_.end(); ++it) {
    if (it->get() != op) continue;
    loop_.defer_delete(std::move(*it));
    ops_.erase(it);
    break;
  }
}

void Engine::fan_out(size_t count, StartFn start, ResultsFn done) {
  auto op = std::make_shared<Op>();
  op->engine = this;
  op->count = count;
  op->limit = static_cast<size_t>(std::max<int64_t>(1, config_.max_parallel));
  op->start = std::move(start);
  op->done = std::move(done);
  op->results.reserve(count);
  ops_.push_back(op);
  // Always from the loop, never inside the caller: an empty batch completes at once there.
  std::weak_ptr<Op> weak = op;
  loop_.post([weak] {
    auto o = weak.lock();
    if (!o) return;
    if (o->count == 0)
      o->complete();
    else
      o->pump();
  });
}

Status Engine::exchange_all(const std::vector<state::DispatchTarget>& targets, AgentClient* client,
                            std::string method, std::string path, std::string body, ResultFn result,
                            ResultsFn done, LiveFns live) {
  if (targets.size() > kMaxHosts) return error(kTooManyHosts);
  if (!client) {
    CX_TRY(init());
    client = client_.get();
  }
  // `client` is kept alive by the engine (reload_credentials retires, never frees, it), so the
  // hosts still waiting for a slot use the identity the batch started with.
  fan_out(
      targets.size(),
      [this, targets, client, method = std::move(method), path = std::move(path),
       body = std::move(body), result = std::move(result),
       live = std::move(live)](size_t i, std::function<void(HostResult)> d) {
        const auto& t = targets[i];
        std::function<void(const proto::RunChunk&)> on_chunk;
        if (live.output)
          on_chunk = [output = live.output, name = t.name](const proto::RunChunk& c) {
            output(name, c);
          };
        return client->call(
            loop_, t.target, default_port_, method, path, body,
            [this, path, t, result, host_done = live.host_done,
             d = std::move(d)](AgentReply reply) {
              HostResult r = result(t.name, reply);
              r.target = t.target;
              r.streamed = reply.streamed;
              if (observer_) observer_(path, r);
              if (host_done) host_done(r);
              d(std::move(r));
            },
            std::move(on_chunk));
      },
      std::move(done));
  return {};
}

Status Engine::run(const std::vector<state::DispatchTarget>& targets, const RunSpec& spec,
                   ResultsFn done, LiveFns live) {
  if (targets.size() > kMaxHosts) return error(kTooManyHosts);
  CX_TRY(init());
  std::vector<std::string> names;
  for (const auto& t : targets)
    names.push_back(t.name);
  log::info("dispatch", {{"HOSTS", join(names, ",")},
                         {"MODE", spec.async ? "async" : "sync"},
                         {"REQID", spec.reqid},
                         {"SCRIPT", spec.script}});
  proto::RunRequest req{spec.script, spec.args, spec.reqid, spec.username, spec.token, spec.async};
  req.stream = live.output && !spec.async;
  if (!req.stream) live.output = nullptr;
  int64_t rt = config_.read_timeout;
  return exchange_all(
      targets, nullptr, "POST", "/run", req.to_json(),
      [spec, rt](const std::string& name, const AgentReply& reply) {
        return run_result(name, reply, spec, rt);
      },
      std::move(done), std::move(live));
}

Status Engine::ping(const std::vector<state::DispatchTarget>& targets, const std::string& reqid,
                    bool renew, ResultsFn done) {
  auto alive = alive_.watch();
  return exchange_all(
      targets, nullptr, "POST", "/ping", proto::PingRequest{reqid}.to_json(),
      [reqid](const std::string& name, const AgentReply& reply) {
        return ping_result(name, reply, reqid);
      },
      [this, renew, alive, done = std::move(done)](Results results) mutable {
        auto shared = std::make_shared<Results>(std::move(results));
        auto finish = [this, renew, alive, shared, done = std::move(done)]() mutable {
          if (alive.gone()) return;
          if (!renew) return done(std::move(*shared));
          renew_due(*shared, [alive, shared, done = std::move(done)] {
            if (alive.gone()) return;
            done(std::move(*shared));
          });
        };
        // The tags of every agent that answered, for the registry.
        std::vector<state::DispatchTarget> answered;
        for (const auto& r : *shared)
          if (string_member(r.doc, "status") == proto::kStatusOk)
            answered.push_back({r.name, r.target});
        if (answered.empty()) return finish();
        Status st = capabilities(answered, [this, alive, finish](Results caps) mutable {
          if (alive.gone()) return;
          refresh_tags(caps, std::move(finish));
        });
        if (!st.ok()) finish();
      });
}

void Engine::refresh_tags(const Results& capabilities, std::function<void()> done) {
  auto updates =
      std::make_shared<std::vector<std::pair<std::string, std::map<std::string, std::string>>>>();
  auto scripts = std::make_shared<state::ScriptsByAgent>();
  for (const auto& r : capabilities) {
    if (auto tags = reported_tags(r)) updates->emplace_back(r.name, std::move(*tags));
    if (auto names = reported_scripts(r)) (*scripts)[r.name] = std::move(*names);
  }
  if (updates->empty() && scripts->empty()) {
    if (done) loop_.post(std::move(done));
    return;
  }
  state::Registry registry = registry_;
  auto work = [registry, updates, scripts]() mutable {
    auto written = registry.bulk_update_tags(*updates);
    if (!written.ok()) log::warning("registry-tags-fail", {{"ERROR", written.message()}});
    // Ours: the script names, for the shell completion (state/scripts_cache.hpp).
    if (scripts->empty()) return;
    if (Status st = state::update_scripts_cache(paths::scripts_cache(), *scripts); !st.ok())
      log::warning("scripts-cache-fail", {{"ERROR", st.message()}});
  };
  auto alive = alive_.watch();
  auto after = [alive, done = std::move(done)] {
    if (!alive.gone() && done) done();
  };
  if (file_work_inline_) {
    work();
    return loop_.post(std::move(after));
  }
  event::queue_work(loop_, std::move(work), std::move(after));
}

Status Engine::capabilities(const std::vector<state::DispatchTarget>& targets, ResultsFn done) {
  return exchange_all(targets, nullptr, "GET", "/capabilities", "", capabilities_result,
                      std::move(done));
}

Status Engine::fetch_results(const std::vector<state::DispatchTarget>& targets,
                             const std::string& reqid, ResultsFn done) {
  return exchange_all(
      targets, nullptr, "GET", "/result/" + reqid, "",
      [reqid](const std::string& name, const AgentReply& reply) {
        return fetch_result(name, reply, reqid);
      },
      std::move(done));
}

Status Engine::rotate(const std::vector<state::DispatchTarget>& targets, const std::string& serial,
                      const std::string& action, AgentClient* client, ResultsFn done) {
  proto::RotateRequest req;
  req.serial = serial;
  req.action = action;
  return exchange_all(targets, client, "POST", "/rotate-serial", req.to_json(), rotate_result,
                      std::move(done));
}

// --- Renewal (§5.6, agent-and-wire §6.4) -----------------------------------------------------

void Engine::renew_due(const Results& pings, std::function<void()> done) {
  auto queue = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
  int64_t now = unix_now();
  for (const auto& p : pings) {
    if (p.state != HostState::ok) continue;
    auto ping = read_reply<proto::PingReply>(p.doc); // the agent's answer, with our members
    if (ping.status != proto::kStatusOk || ping.expiry.empty() || ping.staged) continue;
    if (!renewal_due(ping.expiry, config_.renewal_cert_days(), now)) continue;
    queue->emplace_back(p.name, p.target);
  }
  renew_one(queue, 0, std::move(done));
}

void Engine::renew_one(std::shared_ptr<std::vector<std::pair<std::string, std::string>>> queue,
                       size_t index, std::function<void()> done) {
  if (index >= queue->size()) {
    done();
    return;
  }
  // Plain copies, not structured bindings: clang 14 (the fuzz build) cannot capture those.
  const std::string name = (*queue)[index].first;
  const std::string target = (*queue)[index].second;
  HostPort hp = parse_host(target, default_port_);
  const std::string where = hp.host + ":" + std::to_string(hp.port);
  const std::string reqid = new_reqid();
  log::info("renew", {{"REQID", reqid}, {"STATUS", "starting"}, {"TARGET", where}});

  auto alive = alive_.watch();
  // Ends this agent's renewal (logging a failure) and moves on, from a later loop iteration
  // because we are inside an exchange's callback.
  auto next = [this, alive, queue, index, done, where](const std::string& failure) {
    if (alive.gone()) return;
    if (!failure.empty()) log::err("renew", {{"ERROR", failure}, {"TARGET", where}});
    retire_renew_call();
    loop_.post([this, alive, queue, index, done] {
      if (alive.gone()) return;
      renew_one(queue, index + 1, done);
    });
  };

  if (Status st = init(); !st.ok()) {
    log::err("renew", {{"ERROR", st.message()}, {"TARGET", where}});
    return renew_one(queue, index + 1, std::move(done));
  }
  AgentClient* client = client_.get(); // kept alive by the engine, as in exchange_all
  renew_calls_.push_back(client->call(
      loop_, target, default_port_, "POST", "/renew", proto::RenewRequest{reqid}.to_json(),
      [this, client, name, target, where, reqid, next](AgentReply reply) {
        if (!reply.is_2xx()) return next(transport_text(reply));
        auto doc = json::parse(reply.body);
        if (!doc.ok()) return next("invalid JSON response");
        auto renew = proto::RenewReply::from_json(*doc);
        if (!renew.ok()) return next(renew.message());
        if (renew->status != proto::kStatusOk || !renew->csr || renew->csr->empty())
          return next(renew->error.value_or("agent returned no CSR"));
        pki::CaStore store{config_.ca_dir.empty() ? paths::dispatcher_etc() : config_.ca_dir};
        pki::IssueOptions opts;
        opts.days = static_cast<unsigned>(
            std::clamp<int64_t>(config_.renewal_cert_days(), 1, pki::kMaxValidityDays));
        opts.expected_cn = name; // the CN is bound to the registry name
        auto issued = pki::sign_with_store(store, *renew->csr, opts, state::claim_serial);
        if (!issued.ok()) return next(issued.message());
        proto::RenewCompleteRequest complete{issued->cert_pem, issued->ca_pem, reqid};
        std::string cert = issued->cert_pem;
        retire_renew_call();
        renew_calls_.push_back(
            client->call(loop_, target, default_port_, "POST", "/renew-complete",
                         complete.to_json(), [this, name, where, reqid, cert, next](AgentReply r2) {
                           if (!r2.is_2xx()) return next(transport_text(r2));
                           // The original recorded a renewal on any 2xx; we also require the agent
                           // to say it staged the cert (docs/COMPATIBILITY.md).
                           auto d2 = json::parse(r2.body);
                           if (!d2.ok()) return next("invalid JSON response");
                           auto rc = proto::RenewCompleteReply::from_json(*d2);
                           if (!rc.ok()) return next(rc.message());
                           if (rc->status != proto::kStatusOk)
                             return next(rc->error.value_or("agent did not stage the cert"));
                           std::string expiry = "unknown";
                           if (auto info = pki::cert_info(cert); info.ok())
                             expiry = openssl_time(info->not_after);
                           if (auto up = registry_.update_expiry(name, expiry); !up.ok())
                             return next("cannot record the new expiry: " + up.message());
                           log::info("renew-complete",
                                     {{"EXPIRY", expiry}, {"REQID", reqid}, {"TARGET", where}});
                           next("");
                         }));
      }));
}

void Engine::retire_renew_call() {
  for (auto& c : renew_calls_)
    loop_.defer_delete(std::move(c));
  renew_calls_.clear();
}

} // namespace cx::engine
