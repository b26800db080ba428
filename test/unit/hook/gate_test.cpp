// Tests for src/hook/gate.cpp (tag [hook]): decisions are delivered while the gate lives, and
// never after it is cancelled or destroyed; a cancelled hook is killed.
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <vector>

#include "base/files.hpp"
#include "base/time.hpp"
#include "hook/gate.hpp"
#include "log/log.hpp"
#include "test/unit/testutil.hpp"

using namespace cx;

namespace {

struct Fixture {
  test::TempDir dir;
  event::Loop loop;
  std::vector<hook::Decision> decisions;

  Fixture() { log::init("test", log::Sink::capture); }
  ~Fixture() { log::shutdown(); }

  hook::Policy hook(const std::string& name, const std::string& body) {
    std::string path = dir / name;
    REQUIRE(write_file_atomic(path, "#!/bin/sh\n" + body + "\n", {.mode = 0755}).ok());
    hook::Policy p;
    p.hook_path = path;
    p.caller = hook::Caller::agent;
    return p;
  }
  hook::Gate::DecisionFn record() {
    return [this](const hook::Decision& d) { decisions.push_back(d); };
  }
  // Runs the loop until nothing is left; fails if that takes longer than a hook's sleep.
  void run() {
    uint64_t start = monotonic_ms();
    loop.run();
    CHECK(monotonic_ms() - start < 20000);
  }
};

hook::Request request(const char* action) {
  hook::Request r;
  r.action = action;
  r.source_ip = "127.0.0.1";
  return r;
}

} // namespace

TEST_CASE("a gate delivers each decision once, from the loop", "[hook]") {
  Fixture f;
  hook::Gate gate(f.loop);
  struct Row {
    const char* body;
    bool allowed;
    const char* reason;
  };
  const Row rows[] = {{"exit 0", true, ""}, {"exit 2", false, "bad credentials"}};
  for (const auto& row : rows) {
    f.decisions.clear();
    gate.ask(f.hook("h", row.body), request("run"), f.record());
    CHECK(gate.pending());
    CHECK(f.decisions.empty()); // never inside ask()
    f.run();
    INFO(row.body);
    REQUIRE(f.decisions.size() == 1);
    CHECK(f.decisions[0].allowed == row.allowed);
    CHECK(f.decisions[0].reason == row.reason);
    CHECK_FALSE(gate.pending());
  }
}

TEST_CASE("a cancelled gate kills its hook and drops the decision", "[hook]") {
  Fixture f;
  hook::Gate gate(f.loop);
  std::string marker = f.dir / "finished";
  gate.ask(f.hook("slow", "sleep 30; touch '" + marker + "'"), request("run"), f.record());
  REQUIRE(gate.pending());
  gate.cancel();
  CHECK_FALSE(gate.pending());
  f.run(); // returns once the killed hook is reaped, long before its 30 s
  CHECK(f.decisions.empty());
  CHECK_FALSE(path_exists(marker));
}

TEST_CASE("a decision already on its way when the gate is cancelled is dropped", "[hook]") {
  Fixture f;
  hook::Gate gate(f.loop);
  // With no hook the agent's decision (allow) is delivered on the next iteration, before the
  // cancelled check is destroyed: only the gate's own watch keeps it from arriving.
  hook::Policy none;
  none.caller = hook::Caller::agent;
  gate.ask(none, request("discovery"), f.record());
  gate.cancel();
  f.run();
  CHECK(f.decisions.empty());
}

TEST_CASE("a gate may be cancelled from its own callback and asked again", "[hook]") {
  Fixture f;
  hook::Gate gate(f.loop);
  auto allow = f.hook("allow", "exit 0");
  int calls = 0;
  gate.ask(allow, request("api"), [&](const hook::Decision& d) {
    ++calls;
    CHECK(d.allowed);
    gate.cancel(); // the check that is calling us is destroyed later, not now
    gate.ask(allow, request("run"), f.record());
  });
  f.run();
  CHECK(calls == 1);
  REQUIRE(f.decisions.size() == 1);
  CHECK(f.decisions[0].allowed);
}

TEST_CASE("destroying a gate kills its hook and drops the decision", "[hook]") {
  Fixture f;
  auto gate = std::make_unique<hook::Gate>(f.loop);
  std::string marker = f.dir / "finished";
  gate->ask(f.hook("slow", "sleep 30; touch '" + marker + "'"), request("rotate"), f.record());
  gate.reset();
  f.run();
  CHECK(f.decisions.empty());
  CHECK_FALSE(path_exists(marker));
}
