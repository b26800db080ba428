// Tests for the batched rollout (src/engine/rollout.*, tag [engine]): the option texts, the
// plan, the failure limit, and a rollout driven on a real loop by a fake batch runner that
// answers each batch with chosen exit codes.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/progress.hpp"
#include "engine/rollout.hpp"
#include "log/log.hpp"

using namespace cx;
using namespace cx::engine;

namespace {

std::vector<state::DispatchTarget> hosts(size_t n) {
  std::vector<state::DispatchTarget> out;
  for (size_t i = 1; i <= n; ++i)
    out.push_back({"h" + std::to_string(i), "h" + std::to_string(i)});
  return out;
}

std::vector<size_t> sizes(const std::vector<std::vector<state::DispatchTarget>>& plan) {
  std::vector<size_t> out;
  for (const auto& b : plan)
    out.push_back(b.size());
  return out;
}

HostResult exited(const state::DispatchTarget& t, int64_t code) {
  HostResult r;
  r.name = t.name;
  r.target = t.target;
  r.state = HostState::ok;
  set_member(r.doc, "exit", code);
  canonicalize(r, std::nullopt);
  return r;
}

struct Captured {
  Captured() {
    log::init("test", log::Sink::capture);
    log::clear_captured();
  }
  ~Captured() { log::shutdown(); }
  std::vector<std::string> actions(std::string_view action) const {
    std::vector<std::string> out;
    for (const auto& r : log::captured())
      if (r.line.rfind("ACTION=" + std::string(action) + " ", 0) == 0) out.push_back(r.line);
    return out;
  }
};

// A rollout of `n` hosts where the hosts named in `failing` exit 1; returns the report and
// the batches the runner was asked to run (host names).
struct Outcome {
  RolloutReport report;
  std::vector<std::vector<std::string>> asked;
  std::vector<std::string> printed; // "<number> <state>"
};
Outcome roll(size_t n, RolloutOptions o, const std::set<std::string>& failing,
             const std::set<size_t>& refused_batches = {}) {
  event::Loop loop;
  Outcome out;
  auto plan = plan_batches(hosts(n), o);
  REQUIRE(plan.ok());
  start_rollout(
      loop, {RolloutKind::run_sync, "deploy", o}, std::move(*plan),
      [&](size_t number, const std::string& reqid, const std::vector<state::DispatchTarget>& b,
          std::function<void(BatchOutcome)> done) {
        CHECK(reqid.size() == 16);
        std::vector<std::string> names;
        for (const auto& t : b)
          names.push_back(t.name);
        out.asked.push_back(names);
        BatchOutcome bo;
        if (refused_batches.count(number)) {
          bo = refused_batch(RolloutKind::run_sync, "deploy", b, HostState::denied, "Denied: no",
                             "denied: no");
        } else {
          for (const auto& t : b)
            bo.results.push_back(exited(t, failing.count(t.name) ? 1 : 0));
        }
        loop.post(
            [done, bo = std::make_shared<BatchOutcome>(std::move(bo))] { done(std::move(*bo)); });
      },
      [&](const BatchReport& b, const Results&) {
        out.printed.push_back(std::to_string(b.number) + " " + b.state);
      },
      [&](RolloutReport r) { out.report = std::move(r); });
  loop.run();
  return out;
}

} // namespace

TEST_CASE("rollout: option texts", "[engine]") {
  CHECK(parse_batch_size("10").ok());
  CHECK(parse_batch_size("10")->value == 10);
  CHECK_FALSE(parse_batch_size("10")->percent);
  CHECK(parse_batch_size("25%")->percent);
  CHECK(parse_batch_size("500").ok());
  CHECK(parse_batch_size("501").message() == "'501': too many hosts (max 500) in one batch");
  CHECK(parse_batch_size("0").message() == "'0': a batch is at least 1 host");
  CHECK(parse_batch_size("0%").message() == "'0%': a percentage must be 1% to 100%");
  CHECK(parse_batch_size("101%").message() == "'101%': a percentage must be 1% to 100%");
  for (const char* bad : {"", "%", "-1", "+3", "1.5", "ten", "1 0", "99999999999"})
    CHECK(parse_batch_size(bad).message() ==
          "'" + std::string(bad) + "' is not a count (N) or a percentage (N%)");

  CHECK(*parse_batch_wait("0") == 0);
  CHECK(*parse_batch_wait("2.5") == 2.5);
  CHECK(*parse_batch_wait("3600") == 3600);
  CHECK(parse_batch_wait("3600.1").message() == "'3600.1': the wait is 0 to 3600 seconds");
  for (const char* bad : {"", ".", "-1", "1e3", "1.2.3", "nan", "inf", "2s"})
    CHECK(parse_batch_wait(bad).message() ==
          "'" + std::string(bad) + "' is not a number of seconds");

  CHECK(parse_failure_limit("0")->value == 0);
  CHECK(parse_failure_limit("20%")->percent);
  CHECK(parse_failure_limit("100%").ok());
  CHECK(parse_failure_limit("101%").message() == "'101%': a percentage must be 0% to 100%");
  CHECK(parse_failure_limit("x").message() == "'x' is not a count (K) or a percentage (K%)");

  RolloutOptions o;
  o.wait_s = 1;
  CHECK(check_rollout(o, "--batch", "--batch-wait", "--max-failures").message() ==
        "--batch-wait needs --batch");
  o.wait_s = 0;
  o.max_failures = FailureLimit{0, false};
  CHECK(check_rollout(o, "batch", "batch_wait", "max_failures").message() ==
        "max_failures needs batch");
  o.batch = BatchSize{2, false};
  CHECK(check_rollout(o, "--batch", "--batch-wait", "--max-failures").ok());
}

TEST_CASE("rollout: the plan and the host cap", "[engine]") {
  RolloutOptions o;
  CHECK(sizes(*plan_batches(hosts(7), o)) == std::vector<size_t>{7});
  CHECK(plan_batches(hosts(501), o).message() ==
        "too many hosts (max 500): 501 selected; send them in batches of at most 500");
  o.batch = BatchSize{3, false};
  auto plan = plan_batches(hosts(7), o);
  CHECK(sizes(*plan) == std::vector<size_t>{3, 3, 1});
  CHECK((*plan)[1][0].name == "h4"); // order kept
  o.batch = BatchSize{25, true};
  CHECK(sizes(*plan_batches(hosts(10), o)) == std::vector<size_t>{3, 3, 3, 1}); // ceil(2.5)
  o.batch = BatchSize{1, true};
  CHECK(sizes(*plan_batches(hosts(3), o)) == std::vector<size_t>{1, 1, 1}); // at least 1
  o.batch = BatchSize{60, true};
  CHECK(plan_batches(hosts(1000), o).message() ==
        "too many hosts (max 500): a batch of 60% of 1000 is 600 hosts; use a smaller batch");
  o.batch = BatchSize{500, false};
  CHECK(sizes(*plan_batches(hosts(1001), o)) == std::vector<size_t>{500, 500, 1});

  CHECK(tolerated_failures(std::nullopt, 10) == SIZE_MAX);
  CHECK(tolerated_failures(FailureLimit{2, false}, 10) == 2);
  CHECK(tolerated_failures(FailureLimit{25, true}, 10) == 2); // floor(2.5)
  CHECK(tolerated_failures(FailureLimit{0, true}, 10) == 0);
}

TEST_CASE("rollout: batches run in order and stop past the failure limit", "[engine]") {
  Captured log;
  RolloutOptions o;
  o.batch = BatchSize{2, false};

  SECTION("no limit: every batch runs whatever fails") {
    auto r = roll(5, o, {"h1", "h2", "h3"});
    CHECK(r.asked == std::vector<std::vector<std::string>>{{"h1", "h2"}, {"h3", "h4"}, {"h5"}});
    CHECK(r.report.stopped.empty());
    CHECK(r.report.failed == 3);
    CHECK(r.report.results.size() == 5);
    CHECK(r.printed == std::vector<std::string>{"1 done", "2 done", "3 done"});
    CHECK(log.actions("batch").size() == 3);
    CHECK(log.actions("rollout-stop").empty());
  }
  SECTION("max failures 1: two failures stop it; the rest are skipped") {
    o.max_failures = FailureLimit{1, false};
    auto r = roll(7, o, {"h2", "h3"});
    CHECK(r.asked == std::vector<std::vector<std::string>>{{"h1", "h2"}, {"h3", "h4"}});
    CHECK(r.report.failed == 2);
    CHECK(r.report.stopped == "2 hosts failed, more than the 1 tolerated (max failures 1)");
    CHECK(r.printed == std::vector<std::string>{"1 done", "2 done", "3 skipped", "4 skipped"});
    REQUIRE(r.report.results.size() == 7);
    for (size_t i = 4; i < 7; ++i) {
      CHECK(r.report.results[i].state == HostState::skipped);
      CHECK(result_failed(RolloutKind::run_sync, r.report.results[i]));
      CHECK(*string_member(r.report.results[i].doc, "error") == "skipped: " + r.report.stopped);
    }
    CHECK(r.report.batches[2].state == "skipped");
    CHECK(r.report.batches[2].hosts == std::vector<std::string>{"h5", "h6"});
    CHECK(r.report.batches[1].failed == 1);
    auto stop = log.actions("rollout-stop");
    REQUIRE(stop.size() == 1);
    CHECK(stop[0].find(" FAILED=2 ") != std::string::npos);
    CHECK(stop[0].find(" SKIPPED=3") != std::string::npos);
  }
  SECTION("max failures 0 stops at the first failing batch") {
    o.max_failures = FailureLimit{0, false};
    auto r = roll(6, o, {"h4"});
    CHECK(r.asked.size() == 2);
    CHECK(r.report.batches.back().state == "skipped");
  }
  SECTION("a failure in the last batch stops nothing more") {
    o.max_failures = FailureLimit{0, false};
    auto r = roll(4, o, {"h4"});
    CHECK(r.asked.size() == 2);
    CHECK(r.report.failed == 1);
    CHECK(r.report.any_failed());
  }
  SECTION("a refused batch stops the rollout") {
    auto r = roll(6, o, {}, {2});
    CHECK(r.asked.size() == 2);
    CHECK(r.report.stopped == "batch 2 refused: denied: no");
    CHECK(r.report.batches[1].state == "refused");
    CHECK(r.report.results[2].state == HostState::denied);
    CHECK(r.report.results[5].state == HostState::skipped);
  }
}

TEST_CASE("rollout: the wait between batches shows in the log times", "[engine]") {
  Captured log;
  RolloutOptions o;
  o.batch = BatchSize{1, false};
  o.wait_s = 0.2;
  auto r = roll(3, o, {});
  REQUIRE(r.report.batches.size() == 3);
  // Both stamps are whole milliseconds, each cut down, so a 200 ms gap can read as 199.
  for (size_t i = 1; i < 3; ++i)
    CHECK(r.report.batches[i].started_ms - r.report.batches[i - 1].finished_ms >= 199);
  auto lines = log.actions("batch");
  REQUIRE(lines.size() == 3);
  // Members in the log's order (sorted): AT is the wall-clock time with milliseconds.
  CHECK(lines[0].find("ACTION=batch AT=20") == 0);
  CHECK(lines[0].find(" BATCH=1 BATCHES=3 HOSTS=1 REQID=") != std::string::npos);
  json::Writer w;
  write_batches(w, r.report.batches);
  CHECK(w.str().rfind(R"([{"batch":1,"reqid":")", 0) == 0);
}

TEST_CASE("progress: the line's text", "[engine]") {
  CHECK(progress_text(12, 300, 10, 1, 1, 3249) ==
        "ced: 12/300 done  ok 10  failed 1  timeout 1  3.2s");
  CHECK(progress_text(0, 2, 0, 0, 0, 0) == "ced: 0/2 done  ok 0  failed 0  timeout 0  0.0s");
}
