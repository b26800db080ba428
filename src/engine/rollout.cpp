// Batched rollout; see rollout.hpp.
#include "engine/rollout.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "base/random.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "engine/result.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::engine {

namespace {

// "N" or "N%" with N a run of ASCII digits (no sign, no spaces inside); nullopt otherwise or
// when N does not fit.
std::optional<std::pair<size_t, bool>> count_or_percent(std::string_view text) {
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  if (text.empty() || text.size() > 9) return std::nullopt;
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  return std::make_pair(v, percent);
}

std::string plural(size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

} // namespace

Result<BatchSize> parse_batch_size(std::string_view text) {
  auto v = count_or_percent(trim(text));
  if (!v) return error("'" + std::string(text) + "' is not a count (N) or a percentage (N%)");
  if (v->second) {
    if (v->first < 1 || v->first > 100)
      return error("'" + std::string(text) + "': a percentage must be 1% to 100%");
  } else if (v->first < 1) {
    return error("'" + std::string(text) + "': a batch is at least 1 host");
  } else if (v->first > kMaxHosts) {
    return error("'" + std::string(text) + "': " + std::string(kTooManyHosts) + " in one batch");
  }
  return BatchSize{v->first, v->second};
}

Result<double> parse_batch_wait(std::string_view text) {
  std::string_view t = trim(text);
  size_t dots = 0, digits = 0;
  for (char c : t) {
    if (c == '.')
      ++dots;
    else if (c >= '0' && c <= '9')
      ++digits;
    else
      digits = 0, dots = 2; // anything else is invalid
  }
  if (t.empty() || digits == 0 || dots > 1 || t.size() > 16)
    return error("'" + std::string(text) + "' is not a number of seconds");
  double v = std::strtod(std::string(t).c_str(), nullptr);
  if (!(v >= 0) || v > kMaxBatchWaitSeconds)
    return error("'" + std::string(text) + "': the wait is 0 to " +
                 std::to_string(static_cast<int>(kMaxBatchWaitSeconds)) + " seconds");
  return v;
}

Result<FailureLimit> parse_failure_limit(std::string_view text) {
  auto v = count_or_percent(trim(text));
  if (!v) return error("'" + std::string(text) + "' is not a count (K) or a percentage (K%)");
  if (v->second && v->first > 100)
    return error("'" + std::string(text) + "': a percentage must be 0% to 100%");
  return FailureLimit{v->first, v->second};
}

Status check_rollout(const RolloutOptions& o, std::string_view batch_name,
                     std::string_view wait_name, std::string_view failures_name) {
  if (o.batched()) return {};
  if (o.wait_s > 0) return error(std::string(wait_name) + " needs " + std::string(batch_name));
  if (o.max_failures)
    return error(std::string(failures_name) + " needs " + std::string(batch_name));
  return {};
}

Result<std::vector<std::vector<state::DispatchTarget>>>
plan_batches(const std::vector<state::DispatchTarget>& hosts, const RolloutOptions& o) {
  std::vector<std::vector<state::DispatchTarget>> plan;
  if (!o.batched()) {
    if (hosts.size() > kMaxHosts)
      return error(std::string(kTooManyHosts) + ": " + std::to_string(hosts.size()) +
                   " selected; send them in batches of at most " + std::to_string(kMaxHosts));
    plan.push_back(hosts);
    return plan;
  }
  size_t size = o.batch->value;
  if (o.batch->percent) size = std::max<size_t>(1, (hosts.size() * o.batch->value + 99) / 100);
  if (size > kMaxHosts)
    return error(std::string(kTooManyHosts) + ": a batch of " + std::to_string(o.batch->value) +
                 "% of " + std::to_string(hosts.size()) + " is " + std::to_string(size) +
                 " hosts; use a smaller batch");
  for (size_t from = 0; from < hosts.size(); from += size) {
    size_t to = std::min(hosts.size(), from + size);
    plan.emplace_back(hosts.begin() + static_cast<long>(from),
                      hosts.begin() + static_cast<long>(to));
  }
  return plan;
}

size_t tolerated_failures(const std::optional<FailureLimit>& limit, size_t selected) {
  if (!limit) return std::numeric_limits<size_t>::max();
  if (!limit->percent) return limit->value;
  return selected * limit->value / 100;
}

std::string limit_text(const FailureLimit& limit) {
  return std::to_string(limit.value) + (limit.percent ? "%" : "");
}

bool result_failed(RolloutKind kind, const HostResult& r) {
  switch (kind) {
  case RolloutKind::run_sync:
    return int_member(r.doc, "exit", -1) != 0;
  case RolloutKind::run_async:
    return string_member(r.doc, "status").value_or("") != proto::kStatusAccepted;
  case RolloutKind::ping:
    return string_member(r.doc, "status").value_or("") != proto::kStatusOk;
  }
  return true;
}

std::optional<BatchOutcome> lock_refusal(const state::Acquisition& locks, RolloutKind kind,
                                         const std::string& script,
                                         const std::vector<state::DispatchTarget>& batch) {
  if (!locks.status.ok())
    return refused_batch(kind, script, batch, HostState::error,
                         "Cannot lock: " + locks.status.message(),
                         "cannot lock: " + locks.status.message());
  if (locks.conflicts.empty()) return std::nullopt;
  std::string list = join(locks.conflicts, ", ");
  return refused_batch(kind, script, batch, HostState::busy, "Locked: already running: " + list,
                       "locked: already running: " + list);
}

RefsByName refs_by_name(const state::DispatchResolution& selection) {
  RefsByName refs;
  for (size_t i = 0; i < selection.hosts.size(); ++i)
    refs.emplace(selection.hosts[i].name, selection.refs[i]);
  return refs;
}

std::vector<std::string> refs_of(const std::vector<state::DispatchTarget>& batch,
                                 const RefsByName& refs) {
  std::vector<std::string> out;
  for (const auto& t : batch) {
    auto it = refs.find(t.name);
    out.push_back(it == refs.end() ? t.name : it->second);
  }
  return out;
}

void write_batches(json::Writer& w, const std::vector<BatchReport>& batches) {
  w.begin_array();
  for (const auto& b : batches) {
    w.begin_object().member("batch", static_cast<int64_t>(b.number));
    if (!b.reqid.empty()) w.member("reqid", b.reqid);
    w.member("hosts", b.hosts).member("state", b.state);
    w.member("failed", static_cast<int64_t>(b.failed));
    if (b.started_ms) w.member("started", iso8601_utc_ms(b.started_ms));
    if (b.finished_ms) w.member("finished", iso8601_utc_ms(b.finished_ms));
    w.end_object();
  }
  w.end_array();
}

namespace {

// A result for a host that was not contacted: `status` (ping, async) or `exit` -1 (sync run).
HostResult uncontacted_result(RolloutKind kind, const std::string& script,
                              const state::DispatchTarget& t, HostState state,
                              std::string_view status, const std::string& error) {
  HostResult r;
  r.name = t.name;
  r.target = t.target;
  r.state = state;
  if (kind != RolloutKind::ping) set_member(r.doc, "script", script);
  if (kind == RolloutKind::run_sync)
    set_member(r.doc, "exit", int64_t{-1});
  else
    set_member(r.doc, "status", status);
  set_member(r.doc, "error", error);
  canonicalize(r, std::nullopt);
  return r;
}

HostResult skipped_result(RolloutKind kind, const std::string& script,
                          const state::DispatchTarget& t, const std::string& why) {
  return uncontacted_result(kind, script, t, HostState::skipped, "skipped", "skipped: " + why);
}

struct Run : std::enable_shared_from_this<Run> {
  event::Loop& loop;
  RolloutSpec spec;
  std::vector<std::vector<state::DispatchTarget>> plan;
  BatchRunner runner;
  BatchDoneFn on_batch;
  RolloutDoneFn done;
  RolloutReport report;
  size_t tolerated = 0;
  size_t next = 0;
  std::unique_ptr<event::Timer> pause;

  explicit Run(event::Loop& l) : loop(l) {}

  std::string batches_text() const { return std::to_string(plan.size()); }

  void start_batch() {
    size_t number = next + 1;
    const auto& hosts = plan[next];
    BatchReport b;
    b.number = number;
    b.reqid = new_reqid();
    for (const auto& t : hosts)
      b.hosts.push_back(t.name);
    b.started_ms = unix_now_ms();
    log::info("batch", {{"ROLLOUT", report.id},
                        {"BATCH", std::to_string(number)},
                        {"BATCHES", batches_text()},
                        {"HOSTS", std::to_string(hosts.size())},
                        {"REQID", b.reqid},
                        {"AT", iso8601_utc_ms(b.started_ms)}});
    report.batches.push_back(std::move(b));
    auto self = shared_from_this();
    runner(number, report.batches.back().reqid, hosts,
           [self](BatchOutcome outcome) { self->batch_done(std::move(outcome)); });
  }

  void batch_done(BatchOutcome outcome) {
    BatchReport& b = report.batches.back();
    b.finished_ms = unix_now_ms();
    for (const auto& r : outcome.results)
      if (result_failed(spec.kind, r)) ++b.failed;
    report.failed += b.failed;
    b.state = outcome.refused.empty() ? "done" : "refused";
    log::info("batch-done", {{"ROLLOUT", report.id},
                             {"BATCH", std::to_string(b.number)},
                             {"FAILED", std::to_string(b.failed)},
                             {"FAILED_TOTAL", std::to_string(report.failed)},
                             {"AT", iso8601_utc_ms(b.finished_ms)}});
    if (on_batch) on_batch(b, outcome.results);
    for (auto& r : outcome.results)
      report.results.push_back(std::move(r));
    ++next;
    if (!outcome.refused.empty())
      report.stopped = "batch " + std::to_string(b.number) + " refused: " + outcome.refused;
    else if (report.failed > tolerated)
      report.stopped = plural(report.failed, "host") + " failed, more than the " +
                       std::to_string(tolerated) + " tolerated (max failures " +
                       limit_text(*spec.options.max_failures) + ")";
    if (!report.stopped.empty() && next < plan.size()) return stop();
    if (next >= plan.size()) return finish();
    auto self = shared_from_this();
    uint64_t ms = static_cast<uint64_t>(std::llround(spec.options.wait_s * 1000));
    pause = std::make_unique<event::Timer>(loop);
    pause->start(ms, [self] {
      self->loop.defer_delete(std::move(self->pause));
      self->start_batch();
    });
  }

  void stop() {
    size_t skipped = 0;
    for (; next < plan.size(); ++next) {
      BatchReport b;
      b.number = next + 1;
      b.state = "skipped";
      for (const auto& t : plan[next]) {
        b.hosts.push_back(t.name);
        report.results.push_back(skipped_result(spec.kind, spec.script, t, report.stopped));
        ++skipped;
      }
      if (on_batch) {
        Results none;
        on_batch(b, none);
      }
      report.batches.push_back(std::move(b));
    }
    log::warning("rollout-stop", {{"ROLLOUT", report.id},
                                  {"FAILED", std::to_string(report.failed)},
                                  {"SKIPPED", std::to_string(skipped)},
                                  {"REASON", report.stopped}});
    finish();
  }

  void finish() {
    auto fn = std::move(done);
    runner = nullptr;
    on_batch = nullptr;
    if (fn) fn(std::move(report));
  }
};

} // namespace

BatchOutcome refused_batch(RolloutKind kind, const std::string& script,
                           const std::vector<state::DispatchTarget>& hosts, HostState state,
                           const std::string& error, const std::string& reason) {
  BatchOutcome o;
  for (const auto& t : hosts)
    o.results.push_back(uncontacted_result(kind, script, t, state, proto::kStatusError, error));
  o.refused = reason;
  return o;
}

void start_rollout(event::Loop& loop, RolloutSpec spec,
                   std::vector<std::vector<state::DispatchTarget>> plan, BatchRunner runner,
                   BatchDoneFn on_batch, RolloutDoneFn done) {
  auto run = std::make_shared<Run>(loop);
  size_t selected = 0;
  for (const auto& b : plan)
    selected += b.size();
  run->tolerated = tolerated_failures(spec.options.max_failures, selected);
  run->spec = std::move(spec);
  run->plan = std::move(plan);
  run->runner = std::move(runner);
  run->on_batch = std::move(on_batch);
  run->done = std::move(done);
  run->report.id = new_reqid();
  // Always from the loop, never inside the caller.
  loop.post([run] {
    if (run->plan.empty()) return run->finish();
    run->start_batch();
  });
}

} // namespace cx::engine
