// Tests for src/agent/context.cpp (tag [agent]): live slots, pending requests, reloads and
// detached processes; the handlers' tests cover the map gate and authorise().
#include <catch2/catch.hpp>

#include "handler_fixture.hpp"
#include "log/log.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("log fields from requests are made safe", "[agent]") {
  // log_safe bounds the length; the log line itself makes control characters harmless
  // (log::format_line, for every field of every line).
  struct Row {
    std::string in, safe, reqid;
  };
  const Row rows[] = {
      {"", "", "(none)"},
      {"r1", "r1", "r1"},
      {"a\nACTION=forged", "a?ACTION=forged", "a?ACTION=forged"},
      {std::string("x\x7f\x01y"), "x??y", "x??y"},
      {std::string(300, 'a'), std::string(256, 'a'), std::string(256, 'a')},
  };
  for (const auto& r : rows) {
    CHECK(log::format_line("x", {{"V", log_safe(r.in)}}) == "ACTION=x V=" + r.safe);
    CHECK(log::format_line("x", {{"REQID", reqid_field(r.in)}}) == "ACTION=x REQID=" + r.reqid);
  }
}

TEST_CASE("slots count live requests until the last holder lets go", "[agent]") {
  test::AgentFixture f;
  CHECK(f.ctx->live() == 0);
  auto a = f.ctx->take_slot();
  auto b = a;
  auto c = f.ctx->take_slot();
  CHECK(f.ctx->live() == 2);
  a.reset();
  CHECK(f.ctx->live() == 2);
  b.reset();
  c.reset();
  CHECK(f.ctx->live() == 0);
}

TEST_CASE("a pending request is held until dropped, and keeps its slot until deleted", "[agent]") {
  test::AgentFixture f;
  int drops = 0;
  f.ctx->on_drop([&] { ++drops; });
  auto call = f.call();
  auto p = std::make_shared<Pending>(f.loop, call, "disp-1");
  call = Call{}; // only the Pending holds the slot now
  bool decided = false;
  f.ctx->authorise(p, hook::Request{}, [&](Pending& q, const hook::Decision& d) {
    decided = d.allowed && &q == p.get(); // no hook configured: allowed at once
  });
  CHECK(decided);
  CHECK(f.ctx->pending() == 1);
  uint64_t id = p->id;
  CHECK(id != 0);
  p.reset();
  f.ctx->drop(0);
  f.ctx->drop(id + 1);
  CHECK(drops == 0);
  f.ctx->drop(id);
  CHECK(drops == 1);
  CHECK(f.ctx->pending() == 0);
  CHECK(f.ctx->live() == 1); // deleted on a later loop iteration
  f.run();
  CHECK(f.ctx->live() == 0);
  f.ctx->drop(id);
  CHECK(drops == 1);
}

TEST_CASE("reload swaps the state in, or keeps the old one", "[agent]") {
  test::AgentFixture f;
  auto before = f.ctx->state();
  f.allow("hello", "exit 0");
  CHECK(f.ctx->reload());
  CHECK(f.ctx->state() != before);
  CHECK(f.ctx->state()->scripts.count("hello") == 1);
  CHECK(f.logs() == std::vector<std::string>{"ACTION=reload DISPATCHERS=1 SCRIPTS=1 STATUS=ok"});

  log::clear_captured();
  auto good = f.ctx->state();
  f.write("agent.conf", "port = 7443\n");
  f.write("map", "7f3a9c disp-1\nabc disp-2\n");
  CHECK_FALSE(f.ctx->reload());
  CHECK(f.ctx->state() == good);
  CHECK(f.logs() ==
        std::vector<std::string>{
            "ACTION=reload ERROR=\"Missing required config key 'cert'\" STATUS=failed"});
  // Only the trust files, into a copy of the current state.
  f.ctx->reload_trust();
  CHECK(f.ctx->state() != good);
  CHECK(f.ctx->state()->scripts.count("hello") == 1);
  REQUIRE(f.ctx->state()->trusted.find("abc"));
  CHECK(*f.ctx->state()->trusted.find("abc") == "disp-2");
}

TEST_CASE("start_detached reports whether the process started", "[agent]") {
  test::AgentFixture f;
  event::ProcessOptions ok;
  ok.argv = {"/bin/true"};
  CHECK(f.ctx->start_detached(ok) > 0);
  event::ProcessOptions missing;
  missing.argv = {f.dir / "no-such-binary"};
  CHECK(f.ctx->start_detached(missing) == 0);
  f.run();
}
