// Tests for src/agent/handle_result.cpp (tag [agent]): a stored async record for its owner,
// nobody else's, and 404 for the rest.
#include <catch2/catch.hpp>

#include "agent/async_job.hpp"
#include "handler_fixture.hpp"

using namespace cx;
using namespace cx::agent;

namespace {
proto::ResultRecord record(const std::string& reqid, const std::string& owner) {
  proto::ResultRecord r;
  r.reqid = reqid;
  r.status = "running";
  r.script = "hello";
  r.owner = owner;
  r.started = "2030-01-01T00:00:00Z";
  return r;
}
} // namespace

TEST_CASE("result finds the caller's record, and only the caller's", "[agent]") {
  test::AgentFixture f;
  std::string runs = f.dir / "runs";
  REQUIRE(write_async_record(runs, record("mine", "disp-1")).ok());
  // A legacy flat record of another dispatcher.
  REQUIRE(make_dirs(runs).ok());
  f.write("runs/theirs.json", record("theirs", "disp-2").to_json());
  std::string mine = test::slurp(async_record_path(runs, "disp-1", "mine"));
  REQUIRE_FALSE(mine.empty());
  struct Row {
    const char* reqid;
    int status;
    std::string body;
    const char* log;
  };
  const Row rows[] = {
      {"mine", 200, mine,
       "ACTION=result DISPATCHER=disp-1 PEER=127.0.0.1 REQID=mine STATUS=running"},
      {"theirs", 404, R"({"status":"unknown","reqid":"theirs"})",
       "ACTION=result-deny DISPATCHER=disp-1 PEER=127.0.0.1 REASON=not-owner REQID=theirs"},
      {"nobody", 404, R"({"status":"unknown","reqid":"nobody"})",
       "ACTION=result-miss DISPATCHER=disp-1 PEER=127.0.0.1 REQID=nobody"},
  };
  for (const auto& r : rows) {
    INFO(r.reqid);
    auto call = f.call("", test::kTrustedSerial, r.reqid);
    log::clear_captured();
    handle_result(*f.ctx, call);
    CHECK(f.client->answer().status == r.status);
    CHECK(f.client->answer().body == r.body);
    CHECK(f.logs() == std::vector<std::string>{r.log});
  }
}

TEST_CASE("result refuses a serial the map does not hold", "[agent]") {
  test::AgentFixture f;
  REQUIRE(write_async_record(f.dir / "runs", record("mine", "disp-1")).ok());
  auto call = f.call("", test::kStrangerSerial, "mine");
  handle_result(*f.ctx, call);
  CHECK(f.client->answer().status == 403);
  CHECK(f.client->answer().body == R"({"error":"serial mismatch","status":"forbidden"})");
  CHECK(f.logs() == std::vector<std::string>{
                        "ACTION=serial-reject PEER=127.0.0.1 PEER_SERIAL=0bad REQID=mine"});
}
