// Tests for the records the API writes before a dispatch and the Idempotency-Key index
// (src/state/run_store.cpp, src/state/idempotency.cpp; tag [state]; issue 13, item 5).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include <algorithm>

#include "base/files.hpp"
#include "log/log.hpp"
#include "state/idempotency.hpp"
#include "state/run_store.hpp"
#include "testutil.hpp"
#include "json/writer.hpp"

using namespace cx;
using namespace cx::state;

namespace {

void age(const std::string& path, int64_t seconds_ago) {
  struct utimbuf t;
  t.actime = t.modtime = ::time(nullptr) - seconds_ago;
  REQUIRE(::utime(path.c_str(), &t) == 0);
}

IdempotencyEntry entry(std::string reqid, std::string key = "order-42") {
  IdempotencyEntry e;
  e.key = std::move(key);
  e.scope = idempotency_scope("alice", "t1");
  e.reqid = std::move(reqid);
  e.request = R"({"hosts":["a"],"script":"s"})";
  return e;
}

} // namespace

TEST_CASE("submitted records: both shapes, and how they become unknown", "[state]") {
  Submitter who{"alice", "10.0.0.9"};
  json::Document sync =
      make_submitted_record("r1", "s", false, {"a:7443", "b"}, {"a", "b"}, 100, who, "abcd");
  CHECK(json::to_string(sync) ==
        R"({"reqid":"r1","script":"s","mode":"sync","status":"submitted","created":100,)"
        R"("hosts":["a:7443","b"],"results":[],"complete":false,)"
        R"("submitter":{"username":"alice","source_ip":"10.0.0.9"},"api":"abcd"})");
  CHECK(run_state(sync) == "submitted");
  CHECK(is_sync_record(sync));
  mark_run_unknown(sync);
  CHECK(json::to_string(sync) ==
        R"({"reqid":"r1","script":"s","mode":"sync","status":"unknown","created":100,)"
        R"("hosts":["a:7443","b"],"results":[],"complete":true,)"
        R"("submitter":{"username":"alice","source_ip":"10.0.0.9"},"error":")" +
            std::string(kRunUnknownError) + R"("})");

  json::Document async =
      make_submitted_record("r2", "s", true, {"a:7443", "b"}, {"a", "b"}, 100, std::nullopt, "");
  CHECK(json::to_string(async) ==
        R"({"reqid":"r2","script":"s","mode":"async","status":"submitted","created":100,)"
        R"("hosts":{"a":{"status":"submitted"},"b":{"status":"submitted"}},"pending":[],)"
        R"("complete":false,"api":""})");
  mark_run_unknown(async);
  CHECK(json::to_string(async) ==
        R"({"reqid":"r2","script":"s","mode":"async","status":"unknown","created":100,)"
        R"("hosts":{"a":{"status":"unknown"},"b":{"status":"unknown"}},"pending":[],)"
        R"("complete":true,"error":")" +
            std::string(kRunUnknownError) + R"("})");
  CHECK(host_failed(*json::find(*json::find(async, "hosts"), "a")));

  // The original's shapes have no status.
  json::Document done = make_async_record("r3", "s", json::Document().SetArray(), 1, std::nullopt);
  CHECK(run_state(done).empty());
}

TEST_CASE("API instances: a held lock is alive, a free or missing one is gone", "[state]") {
  test::TempDir d;
  std::string runs = d / "runs";
  ApiInstanceLock mine;
  REQUIRE(mine.acquire(runs).ok());
  CHECK(mine.id().size() == 16);
  CHECK(api_instance_alive(runs, mine.id()));
  CHECK_FALSE(api_instance_alive(runs, "0123456789abcdef")); // no such lock file
  CHECK_FALSE(api_instance_alive(runs, ""));
  CHECK_FALSE(api_instance_alive(runs, "../x"));
  std::string id;
  {
    ApiInstanceLock gone;
    REQUIRE(gone.acquire(runs).ok());
    id = gone.id();
    CHECK(api_instance_alive(runs, id));
  }
  CHECK_FALSE(api_instance_alive(runs, id)); // its process (here, its owner) is gone
}

TEST_CASE("settle_all_abandoned marks the records of gone API processes only", "[state]") {
  test::TempDir d;
  RunStore store(d / "runs");
  ApiInstanceLock live;
  REQUIRE(live.acquire(store.dir()).ok());
  std::string dead_id;
  {
    ApiInstanceLock dead;
    REQUIRE(dead.acquire(store.dir()).ok());
    dead_id = dead.id();
  }
  auto save = [&](const char* reqid, std::string_view instance) {
    REQUIRE(store
                .save(reqid, make_submitted_record(reqid, "s", true, {"a"}, {"a"}, 1, std::nullopt,
                                                   instance))
                .ok());
  };
  save("live1", live.id());
  save("dead1", dead_id);
  save("none1", "");
  REQUIRE(store
              .save("final1",
                    make_async_record("final1", "s", json::Document().SetArray(), 1, std::nullopt))
              .ok());
  log::init("ctrl-exec-api", log::Sink::capture);
  auto marked = store.settle_all_abandoned();
  std::sort(marked.begin(), marked.end());
  CHECK(marked == std::vector<std::string>{"dead1", "none1"});
  CHECK(run_state(*store.load("live1")) == "submitted");
  CHECK(run_state(*store.load("dead1")) == "unknown");
  CHECK(json::find(*store.load("dead1"), "api") == nullptr);
  CHECK(run_state(*store.load("final1")).empty());
  CHECK(log::captured().size() == 2);
  // The dead process's lock file went; the live one's stayed.
  CHECK(::access((store.dir() + "/.api/" + dead_id + ".lock").c_str(), F_OK) != 0);
  CHECK(::access((store.dir() + "/.api/" + live.id() + ".lock").c_str(), F_OK) == 0);
  // A second pass finds nothing more; settle_abandoned re-reads and leaves a live record.
  CHECK(store.settle_all_abandoned().empty());
  auto rec = store.load("live1");
  CHECK_FALSE(store.settle_abandoned("live1", *rec));
  log::shutdown();
}

TEST_CASE("Idempotency-Key format", "[state]") {
  struct Row {
    std::string key;
    bool ok;
  };
  const Row rows[] = {
      {"a", true},
      {"order 42/retry:1", true},
      {std::string(128, 'k'), true},
      {"", false},
      {std::string(129, 'k'), false},
      {"tab\there", false},
      {"caf\xc3\xa9", false},
      {"del\x7f", false},
  };
  for (const auto& r : rows) {
    INFO(r.key);
    CHECK(is_idempotency_key(r.key) == r.ok);
  }
  CHECK(idempotency_scope("alice", "t1") != idempotency_scope("alice", "t2"));
  CHECK(idempotency_scope("alice", "t1") != idempotency_scope("bob", "t1"));
  // The separator keeps the two apart.
  CHECK(idempotency_scope("ab", "c") != idempotency_scope("a", "bc"));
  CHECK(idempotency_scope("alice", "t1").find("t1") == std::string::npos);
}

TEST_CASE("IdempotencyIndex: one claim wins, the answer is kept, old entries go", "[state]") {
  test::TempDir d;
  IdempotencyIndex index(d / "runs");
  int64_t now = ::time(nullptr);
  IdempotencyEntry first = entry("r1");
  CHECK_FALSE(index.find(first.scope, first.key, now));
  REQUIRE(*index.claim(first, now));
  CHECK_FALSE(*index.claim(entry("r2"), now)); // another request of the same key
  auto found = index.find(first.scope, first.key, now);
  REQUIRE(found);
  CHECK(found->reqid == "r1");
  CHECK_FALSE(found->answer);
  // Another key, another submitter: other entries.
  CHECK_FALSE(index.find(first.scope, "other", now));
  CHECK_FALSE(index.find(idempotency_scope("bob", "t1"), first.key, now));

  first.code = 202;
  first.answer = R"({"ok":true,"reqid":"r1"})";
  REQUIRE(index.record_answer(first).ok());
  found = index.find(first.scope, first.key, now);
  REQUIRE(found);
  CHECK((found->code == 202 && found->answer == first.answer && !found->async));
  CHECK_FALSE(index.record_answer(entry("r9")).ok()); // not the entry of r9

  // Past the retention an entry is not found, is replaced by a new claim, and is purged.
  std::string path = index.entry_path(first.scope, first.key);
  age(path, kRunRetentionSeconds + 10);
  CHECK_FALSE(index.find(first.scope, first.key, now));
  REQUIRE(*index.claim(entry("r3"), now));
  CHECK(index.find(first.scope, first.key, now)->reqid == "r3");
  IdempotencyEntry other = entry("r4", "k2");
  REQUIRE(*index.claim(other, now));
  age(index.entry_path(other.scope, other.key), kRunRetentionSeconds + 10);
  CHECK(index.purge(now) == 1);
  CHECK(index.find(first.scope, first.key, now));
  index.forget(entry("r5")); // not its run: kept
  CHECK(index.find(first.scope, first.key, now));
  index.forget(entry("r3"));
  CHECK_FALSE(index.find(first.scope, first.key, now));
  // No temp files are left behind.
  auto names = list_dir(d / "runs/.idempotency");
  REQUIRE(names.ok());
  CHECK(names->empty());
}
