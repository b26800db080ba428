// Batched rollout (ours; docs/COMPATIBILITY.md): a selection of hosts run `N` or `N%` at a
// time, with a pause between batches, stopped once more hosts have failed than the operator
// tolerates. Each batch is a run of its own (its reqid, auth hook call, locks, dispatch line
// and run record): the caller supplies that as the BatchRunner; this module only plans,
// sequences, counts and reports. The CLI (engine/commands.cpp) and the API (api/fleet.cpp)
// both drive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "engine/engine.hpp"
#include "event/loop.hpp"
#include "state/locks.hpp"
#include "state/registry.hpp"
#include "json/writer.hpp"

namespace cx::engine {

// `N` hosts or `N%` of the selection.
struct BatchSize {
  size_t value = 0;
  bool percent = false;
};
// `K` failed hosts or `K%` of the selection tolerated; one more stops the rollout.
struct FailureLimit {
  size_t value = 0;
  bool percent = false;
};

inline constexpr double kMaxBatchWaitSeconds = 3600;

struct RolloutOptions {
  std::optional<BatchSize> batch; // none: one run of the whole selection (the original's way)
  double wait_s = 0;              // between the end of one batch and the start of the next
  std::optional<FailureLimit> max_failures; // none: every batch runs, whatever fails

  bool batched() const { return batch.has_value(); }
};

// The option texts. Errors say what is wrong, without the option's name (the caller adds it:
// "--batch" on the command line, "batch" in an API body).
//   batch:        "N" with N in 1..500, or "N%" with N in 1..100;
//   batch wait:   seconds, a decimal number in 0..3600;
//   max failures: "K" with K >= 0, or "K%" with K in 0..100.
Result<BatchSize> parse_batch_size(std::string_view text);
Result<double> parse_batch_wait(std::string_view text);
Result<FailureLimit> parse_failure_limit(std::string_view text);
// A wait or a failure limit without a batch size: "--batch-wait needs --batch" (with the
// given option names).
Status check_rollout(const RolloutOptions& o, std::string_view batch_name,
                     std::string_view wait_name, std::string_view failures_name);

// The batches of a selection, in order. Without a batch size the whole selection is one batch.
// More than kMaxHosts hosts in one batch is "too many hosts (max 500)", with what was selected
// and what to do about it.
Result<std::vector<std::vector<state::DispatchTarget>>>
plan_batches(const std::vector<state::DispatchTarget>& hosts, const RolloutOptions& o);
// How many failed hosts are tolerated in a selection of `selected` (SIZE_MAX without a limit).
size_t tolerated_failures(const std::optional<FailureLimit>& limit, size_t selected);
// "1" or "20%", as given.
std::string limit_text(const FailureLimit& limit);

// What a batch's run is about, for the shape of its skipped hosts' results.
enum class RolloutKind { run_sync, run_async, ping };
// Whether a host's result counts as failed for the rollout: a sync run that did not exit 0,
// an async submission that was not accepted, a ping that was not answered ok.
bool result_failed(RolloutKind kind, const HostResult& r);

struct BatchOutcome;
// A batch refused as a whole, for `reason` (the auth hook said no, a lock was held, the
// dispatch could not start): one result per host with `state` and `error`, in the shape of
// `kind`'s results.
BatchOutcome refused_batch(RolloutKind kind, const std::string& script,
                           const std::vector<state::DispatchTarget>& hosts, HostState state,
                           const std::string& error, const std::string& reason);

// The reference each selected name was given by (the auth hook and the locks of a batch see
// those, as a run naming them would), and the references of one batch.
using RefsByName = std::map<std::string, std::string>;
RefsByName refs_by_name(const state::DispatchResolution& selection);
std::vector<std::string> refs_of(const std::vector<state::DispatchTarget>& batch,
                                 const RefsByName& refs);
// A batch's lock acquisition that failed (state error) or found runs in progress (busy), as
// the refusal of the whole batch; nullopt when the locks are held.
std::optional<BatchOutcome> lock_refusal(const state::Acquisition& locks, RolloutKind kind,
                                         const std::string& script,
                                         const std::vector<state::DispatchTarget>& batch);

// How one batch's run ended.
struct BatchOutcome {
  Results results; // one per host of the batch
  // Non-empty when the batch was refused as a whole (the auth hook said no, a lock was held):
  // its hosts' results say why, and the rollout stops with this reason.
  std::string refused;
};
// Runs one batch (`number` from 1) as a run with `reqid`; calls `done` once, from the loop.
using BatchRunner = std::function<void(size_t number, const std::string& reqid,
                                       const std::vector<state::DispatchTarget>&,
                                       std::function<void(BatchOutcome)> done)>;

struct BatchReport {
  size_t number = 0;
  std::vector<std::string> hosts;
  std::string reqid;
  std::string state; // "done", "refused" or "skipped"
  size_t failed = 0;
  int64_t started_ms = 0, finished_ms = 0; // wall clock; 0 when skipped
};

struct RolloutReport {
  std::string id;  // ROLLOUT= of its log lines
  Results results; // every host, in batch order, skipped ones included
  std::vector<BatchReport> batches;
  size_t failed = 0;
  std::string stopped; // why the rollout stopped early; "" when every batch ran
  bool any_failed() const { return failed > 0 || !stopped.empty(); }
};

// The `batches` member of a JSON answer.
void write_batches(json::Writer& w, const std::vector<BatchReport>& batches);

struct RolloutSpec {
  RolloutKind kind = RolloutKind::run_sync;
  std::string script; // run: for the skipped hosts' results
  RolloutOptions options;
};
using BatchDoneFn = std::function<void(const BatchReport&, const Results&)>;
using RolloutDoneFn = std::function<void(RolloutReport)>;

// Runs a rollout on the loop: batch after batch, each with a new reqid, logging `batch` and
// `batch-done` (AT= is the wall-clock time with milliseconds) and `rollout-stop`. `on_batch`
// (optional) runs after each batch with its report and results, before the pause, e.g. to
// print them at once; `done` runs once at the end. The rollout keeps itself alive until then.
void start_rollout(event::Loop& loop, RolloutSpec spec,
                   std::vector<std::vector<state::DispatchTarget>> plan, BatchRunner runner,
                   BatchDoneFn on_batch, RolloutDoneFn done);

} // namespace cx::engine
