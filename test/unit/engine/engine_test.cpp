// Tests for src/engine/engine.cpp (tag [engine]): when an agent cert is due for renewal, and the
// host cap that refuses a request before any credential is loaded or connection made
// (dispatcher-and-api §5.3, §5.6; acceptance rows 18 and 29 of §12).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/time.hpp"
#include "engine/engine.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::engine;

TEST_CASE("renewal_due: less than cert_days/2 left; unparseable is not due", "[engine]") {
  const int64_t now = utc_to_unix(2030, 1, 1, 0, 0, 0);
  auto in_days = [&](double days) {
    return openssl_time(now + static_cast<int64_t>(days * 86400));
  };
  struct Row {
    std::string expiry;
    int64_t cert_days;
    bool due;
  };
  const Row rows[] = {
      {in_days(400), 365, false},
      {in_days(100), 365, true},
      {in_days(-1), 365, true}, // expired
      {in_days(0), 365, true},
      {"garbage", 365, false},
      {"", 365, false},
      {"unknown", 365, false},
      {in_days(200), 365, false},
      {in_days(200), 730, true},
      // The threshold is 182.5 days at 365, in real arithmetic.
      {in_days(182), 365, true},
      {in_days(182.5), 365, false},
      {in_days(183), 365, false},
      {"Feb 27 04:17:27 2029 GMT", 365, true},
  };
  for (const auto& r : rows) {
    INFO(r.expiry << " cert_days " << r.cert_days);
    CHECK(renewal_due(r.expiry, r.cert_days, now) == r.due);
  }
}

namespace {

std::vector<state::DispatchTarget> targets(size_t n) {
  std::vector<state::DispatchTarget> out;
  for (size_t i = 0; i < n; ++i) {
    std::string name = "agent-" + std::to_string(i);
    out.push_back({name, name + ":7443"});
  }
  return out;
}

struct CapturedLog {
  CapturedLog() {
    log::init("test", log::Sink::capture);
    log::clear_captured();
  }
  ~CapturedLog() { log::shutdown(); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
};

// Each engine operation that connects to a list of targets, as one callable.
using Operation =
    std::function<Status(Engine&, const std::vector<state::DispatchTarget>&, ResultsFn)>;

struct NamedOperation {
  const char* name;
  Operation op;
};

std::vector<NamedOperation> operations() {
  return {
      {"run",
       [](Engine& e, const std::vector<state::DispatchTarget>& t, ResultsFn done) {
         RunSpec spec;
         spec.script = "backup";
         spec.reqid = "a1b2c3d4e5f60001";
         return e.run(t, spec, std::move(done));
       }},
      {"run async",
       [](Engine& e, const std::vector<state::DispatchTarget>& t, ResultsFn done) {
         RunSpec spec;
         spec.script = "backup";
         spec.reqid = "a1b2c3d4e5f60001";
         spec.async = true;
         return e.run(t, spec, std::move(done));
       }},
      {"ping", [](Engine& e, const std::vector<state::DispatchTarget>& t,
                  ResultsFn done) { return e.ping(t, "a1b2c3d4e5f60001", true, std::move(done)); }},
      {"capabilities", [](Engine& e, const std::vector<state::DispatchTarget>& t,
                          ResultsFn done) { return e.capabilities(t, std::move(done)); }},
      {"fetch_results",
       [](Engine& e, const std::vector<state::DispatchTarget>& t, ResultsFn done) {
         return e.fetch_results(t, "a1b2c3d4e5f60001", std::move(done));
       }},
  };
}

} // namespace

TEST_CASE("host cap: 501 hosts fail before credentials are loaded or anyone is contacted",
          "[engine]") {
  test::TempDir tmp;
  conf::DispatcherConfig config;
  // None of these exist: the cap must be checked before they are read.
  config.cert = tmp / "missing.crt";
  config.key = tmp / "missing.key";
  config.ca = tmp / "missing-ca.crt";
  config.registry_dir = tmp / "agents";
  CapturedLog capture;

  for (const auto& [name, op] : operations()) {
    INFO(name);
    event::Loop loop;
    Engine engine(loop, config, nullptr);
    bool called = false;
    Status st = op(engine, targets(kMaxHosts + 1), [&](Results) { called = true; });
    CHECK_FALSE(st.ok());
    CHECK(st.message() == "too many hosts (max 500)");
    CHECK_FALSE(engine.ready());

    // Exactly at the limit the cap lets the request through: it then fails on the missing
    // credentials instead, naming the file.
    st = op(engine, targets(kMaxHosts), [&](Results) { called = true; });
    CHECK_FALSE(st.ok());
    CHECK(st.message() != "too many hosts (max 500)");
    CHECK_THAT(st.message(), Catch::Contains("missing"));

    loop.run();
    CHECK_FALSE(called);
    // Nothing was dispatched, so nothing was logged.
    CHECK(log::captured().empty());
  }

  event::Loop loop;
  Engine engine(loop, config, nullptr);
  bool called = false;
  Status st = engine.rotate(targets(kMaxHosts + 1), "7f3a9c", "add", nullptr,
                            [&](Results) { called = true; });
  CHECK(st.message() == "too many hosts (max 500)");
  loop.run();
  CHECK_FALSE(called);
}

TEST_CASE("host cap: an empty list gives [] from the loop", "[engine]") {
  if (!test::have_openssl()) {
    WARN("openssl CLI not found; skipped");
    return;
  }
  test::TempDir tmp;
  test::make_ca(tmp);
  test::make_leaf(tmp, "dispatcher", "ctrl-exec-dispatcher", "01");
  conf::DispatcherConfig config;
  config.cert = tmp / "dispatcher.crt";
  config.key = tmp / "dispatcher.key";
  config.ca = tmp / "ca.crt";
  config.registry_dir = tmp / "agents";
  CapturedLog capture;

  for (const auto& [name, op] : operations()) {
    INFO(name);
    event::Loop loop;
    Engine engine(loop, config, nullptr);
    int calls = 0;
    size_t count = 99;
    Status st = op(engine, {}, [&](Results r) {
      ++calls;
      count = r.size();
    });
    REQUIRE(st.ok());
    CHECK(calls == 0); // never inside the caller
    loop.run();
    CHECK(calls == 1);
    CHECK(count == 0);
  }
}
