// The dispatcher engine (dispatcher-and-api §5): concurrent exchanges with many agents on one
// event loop, at most max_parallel at once, results in completion order with the original's
// shapes and log lines. The CLI (src/engine/commands.cpp) and the API (src/api) both drive it.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "conf/dispatcher.hpp"
#include "engine/agent_client.hpp"
#include "engine/result.hpp"
#include "event/loop.hpp"
#include "state/registry.hpp"

namespace cx::engine {

// More hosts than this in one request is refused before any connection (§5.3).
inline constexpr size_t kMaxHosts = 500;
inline constexpr const char* kTooManyHosts = "too many hosts (max 500)";

struct RunSpec {
  std::string script;
  std::vector<std::string> args;
  std::string reqid;
  std::string username, token;
  bool async = false;
};

using Results = std::vector<HostResult>;
using ResultsFn = std::function<void(Results)>;
// Live output (ours; engine/live.hpp): what a run reports while it goes on. `output` gets each
// piece of a host's output as its agent sends it, `host_done` each host's result as it ends.
struct LiveFns {
  std::function<void(const std::string& host, const proto::RunChunk& chunk)> output;
  std::function<void(const HostResult& result)> host_done;
};

// The results as one JSON array (copies of each result object), e.g. for a run-store record.
json::Document results_document(const Results& results);
// The same, serialised compactly.
std::string results_json_array(const Results& results);

// The pure part of each exchange: the per-host result from an agent's reply, with its log line.
// Exposed for unit tests, which feed them replies without a network.
HostResult run_result(const std::string& name, const AgentReply& reply, const RunSpec& spec,
                      int64_t read_timeout_s);
HostResult ping_result(const std::string& name, const AgentReply& reply, const std::string& reqid);
HostResult capabilities_result(const std::string& name, const AgentReply& reply);
HostResult fetch_result(const std::string& name, const AgentReply& reply, const std::string& reqid);
HostResult rotate_result(const std::string& name, const AgentReply& reply);

// Whether an agent cert expiring at `expiry` (OpenSSL text) is due for renewal at `now` with
// `cert_days` (§5.6): less than cert_days/2 days left. Unparseable is not due.
bool renewal_due(std::string_view expiry, int64_t cert_days, int64_t now);

// Runs `step` on batches of at most kMaxHosts of `targets`, one batch after another, and hands
// the concatenated results to `done`. Fleet-wide work (rotation broadcasts, maintain) is not
// bound by the per-request host cap. A batch that `step` refuses reports each of its hosts as
// failed with the refusal.
using BatchStep = std::function<Status(const std::vector<state::DispatchTarget>&,
                                       std::function<void(std::vector<HostResult>)>)>;
void run_batched(std::shared_ptr<std::vector<state::DispatchTarget>> targets, size_t from,
                 BatchStep step, std::shared_ptr<std::vector<HostResult>> acc,
                 std::function<void(std::vector<HostResult>)> done);

// The hosts a command addresses: its explicit references, resolved as always
// (Registry::resolve_dispatch), then, with a tag selector (ours; docs/COMPATIBILITY.md), every
// registered agent whose cached tags match all its pairs, sorted by name. A name already
// addressed explicitly is not added again.
struct Selection {
  state::DispatchResolution resolution; // !ok: unknown references (resolution.unknown)
  bool no_tag_match = false;            // a selector was given and matched no agent
};
Selection select_hosts(const state::Registry& registry, const std::vector<std::string>& refs,
                       const std::optional<state::TagFilter>& tags);

// The tags an agent reported in a GET /capabilities result: its `tags` object's scalar
// members, when it answered `ok` with one; nullopt otherwise.
std::optional<std::map<std::string, std::string>> reported_tags(const HostResult& caps);
// The script names an agent reported in a GET /capabilities result, when it answered `ok`
// with a `scripts` list; nullopt otherwise.
std::optional<std::vector<std::string>> reported_scripts(const HostResult& caps);

class Engine {
public:
  // `default_port` is the CLI's --port (0: none, i.e. 7443). `sessions` may be null.
  Engine(event::Loop& loop, const conf::DispatcherConfig& config,
         std::shared_ptr<SessionStore> sessions, int default_port = 0);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads the dispatcher's client credentials; run before the first exchange. The API calls
  // it at startup, the CLI when it first needs to talk to an agent. Errors name the file.
  Status init();
  bool ready() const { return client_ != nullptr; }
  // Forgets the loaded credentials, so that the next exchange reads the cert and key files
  // again (after a rotation replaced them). Exchanges in flight keep the old identity.
  void reload_credentials();

  // Each fails at once, connecting to nobody, with kTooManyHosts beyond kMaxHosts hosts; an
  // empty list gives [] (from the loop). `done` runs once, from the loop, unless the Engine is
  // destroyed first.

  // POST /run to every target (sync or async as spec.async), logging `dispatch` first. With
  // `live.output` (sync only), the agents are asked for live output ("stream": true), and
  // each piece a host sends goes there as it arrives; an agent that answers the original's
  // way (the original's, or ours through the executor) sends none, and its result has the
  // output. `live.host_done` gets each result as it comes.
  Status run(const std::vector<state::DispatchTarget>& targets, const RunSpec& spec, ResultsFn done,
             LiveFns live = {});
  // POST /ping with one reqid for the batch. The agents that answered are then asked for
  // their capabilities, and the registry's cached tags of those whose tags changed are
  // replaced (ours: the original refreshed tags only on discovery). With `renew`, agent certs
  // that are due are then renewed one after the other (§5.6). `done` runs after all that; the
  // results are the pings'.
  Status ping(const std::vector<state::DispatchTarget>& targets, const std::string& reqid,
              bool renew, ResultsFn done);
  // GET /capabilities.
  Status capabilities(const std::vector<state::DispatchTarget>& targets, ResultsFn done);
  // GET /result/<reqid>.
  Status fetch_results(const std::vector<state::DispatchTarget>& targets, const std::string& reqid,
                       ResultsFn done);
  // POST /rotate-serial {"serial","action"}, through `client` when given (rotation announces a
  // new serial with the previous, still-trusted identity), else the engine's own.
  Status rotate(const std::vector<state::DispatchTarget>& targets, const std::string& serial,
                const std::string& action, AgentClient* client, ResultsFn done);

  // Replaces the registry's cached tags of the agents whose capabilities results report
  // other tags (best effort); `done` (optional) runs after, on the loop. The files are read
  // and written on libuv's thread pool, or on the loop itself with file_work_inline.
  void refresh_tags(const Results& capabilities, std::function<void()> done);
  // A one-shot CLI process waits for its file work anyway: doing it on the loop spares starting
  // libuv's thread pool (four threads) for a few small files. A server keeps the pool, so that
  // its loop never waits on the disk.
  void set_file_work_inline(bool inline_work) { file_work_inline_ = inline_work; }

  // Called on the loop with every host's result of every exchange, and the agent path it went
  // to ("/run", "/ping", "/result/<reqid>", ...): the API's metrics count them.
  using ResultObserver = std::function<void(std::string_view path, const HostResult& result)>;
  void observe_results(ResultObserver fn) { observer_ = std::move(fn); }
  // Fan-outs started and not yet done.
  size_t fan_outs_in_flight() const { return ops_.size(); }
  // The TLS handshakes of every client this engine has used (current and retired).
  AgentClientCounters client_counters() const;

  // Renews the certs of the agents whose ping results say they are due, one after another.
  void renew_due(const Results& pings, std::function<void()> done);

  event::Loop& loop() { return loop_; }
  const conf::DispatcherConfig& config() const { return config_; }
  AgentClient* client() { return client_.get(); }
  int default_port() const { return default_port_; }
  state::Registry& registry() { return registry_; }

  struct Op;

private:
  using StartFn = std::function<std::unique_ptr<http::ClientCall>(
      size_t index, std::function<void(HostResult)> done)>;
  using ResultFn = std::function<HostResult(const std::string& name, const AgentReply& reply)>;
  // One request to every target through `client` (the engine's own when null), each answer
  // turned into a result by `result`.
  Status exchange_all(const std::vector<state::DispatchTarget>& targets, AgentClient* client,
                      std::string method, std::string path, std::string body, ResultFn result,
                      ResultsFn done, LiveFns live = {});
  // Runs `count` exchanges with at most max_parallel at once; results in completion order.
  void fan_out(size_t count, StartFn start, ResultsFn done);
  void renew_one(std::shared_ptr<std::vector<std::pair<std::string, std::string>>> queue,
                 size_t index, std::function<void()> done);
  void finished(Op* op);
  void retire_renew_call();

  event::Loop& loop_;
  conf::DispatcherConfig config_;
  std::shared_ptr<SessionStore> sessions_;
  int default_port_;
  state::Registry registry_;
  std::unique_ptr<AgentClient> client_;
  std::vector<std::unique_ptr<AgentClient>> retired_clients_;
  std::list<std::shared_ptr<Op>> ops_;
  std::vector<std::unique_ptr<http::ClientCall>> renew_calls_; // the renewal exchange under way
  event::Liveness alive_;
  bool file_work_inline_ = false;
  ResultObserver observer_;
};

} // namespace cx::engine
