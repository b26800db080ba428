// Tests for src/state/run_store.cpp (tag [state]): record shapes, the aggregation transitions,
// the host-failed rule, saving, loading and the purge (dispatcher-and-api §3.3; acceptance
// row 21 of §12).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

#include "base/files.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "state/run_store.hpp"
#include "testutil.hpp"
#include "json/writer.hpp"

using namespace cx;
using namespace cx::state;

namespace {

using Names = std::vector<std::string>;

json::Document doc_of(const std::string& text) {
  auto d = json::parse(text);
  INFO(text);
  REQUIRE(d.ok());
  return std::move(d).value();
}

// The per-host entry `name` of an async record, as compact JSON ("" when absent).
std::string entry_json(const json::Value& record, const char* name) {
  const json::Value* hosts = json::find(record, "hosts");
  const json::Value* e = hosts ? json::find(*hosts, name) : nullptr;
  return e ? json::to_string(*e) : std::string();
}

std::string member_json(const json::Value& record, const char* name) {
  const json::Value* v = json::find(record, name);
  return v ? json::to_string(*v) : std::string();
}

void age(const std::string& path, int64_t seconds) {
  struct utimbuf t;
  t.actime = t.modtime = static_cast<time_t>(unix_now() - seconds);
  REQUIRE(::utime(path.c_str(), &t) == 0);
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

const char* const kSubmitResults =
    R"([{"host":"h1","status":"accepted","reqid":"r2","rtt":"4ms"},)"
    R"({"host":"h2","status":"busy","error":"script already running"},)"
    R"({"host":"h3","status":"error","error":"forbidden"},)"
    R"({"host":"h4"},)"
    R"({"host":"h5","status":"done"},)"
    R"({"status":"accepted"}])";

} // namespace

TEST_CASE("run store: reqids", "[state]") {
  struct Row {
    const char* reqid;
    bool ok;
  };
  const Row rows[] = {
      {"a1b2c3d4e5f60001", true},
      {"A-b_9", true},
      {"-", true},
      {"", false},
      {"../evil", false},
      {"a.b", false},
      {"a b", false},
      {"a/b", false},
      {"r\n", false},
      {"caf\xc3\xa9", false},
  };
  for (const auto& r : rows) {
    INFO(r.reqid);
    CHECK(is_run_reqid(r.reqid) == r.ok);
  }
}

TEST_CASE("run store: a sync record keeps its shape", "[state]") {
  auto results = doc_of(R"([{"host":"h1","exit":0,"stdout":"ok\n","stderr":"","rtt":"5ms"}])");
  auto rec = make_sync_record("r1", "deploy", {"h1", "h2:7450"}, results, 1700000000,
                              Submitter{"alice", "10.0.0.1"});
  CHECK(json::to_string(rec) ==
        R"({"reqid":"r1","script":"deploy","mode":"sync","hosts":["h1","h2:7450"],)"
        R"("results":[{"host":"h1","exit":0,"stdout":"ok\n","stderr":"","rtt":"5ms"}],)"
        R"("completed":1700000000,"complete":true,)"
        R"("submitter":{"username":"alice","source_ip":"10.0.0.1"}})");
  CHECK(is_sync_record(rec));
  CHECK(pending_hosts(rec).empty()); // its hosts are an array, not per-host entries

  auto bare = make_sync_record("r1", "deploy", {}, doc_of("[]"), 5, std::nullopt);
  CHECK(json::to_string(bare) == R"({"reqid":"r1","script":"deploy","mode":"sync","hosts":[],)"
                                 R"("results":[],"completed":5,"complete":true})");

  struct Row {
    const char* record;
    bool sync;
  };
  const Row rows[] = {
      {R"({"mode":"sync","results":[]})", true},
      {R"({"mode":"sync","results":{}})", false},
      {R"({"mode":"sync"})", false},
      {R"({"mode":"async","results":[]})", false},
      {R"([])", false},
  };
  for (const auto& r : rows) {
    INFO(r.record);
    CHECK(is_sync_record(doc_of(r.record)) == r.sync);
  }
}

TEST_CASE("run store: an async record takes each host's submit status", "[state]") {
  auto rec = make_async_record("r2", "deploy", doc_of(kSubmitResults), 1700000000, std::nullopt);
  CHECK(json::to_string(rec) ==
        R"({"reqid":"r2","script":"deploy","mode":"async","created":1700000000,"hosts":{)"
        R"("h1":{"status":"accepted"},)"
        R"("h2":{"status":"busy","error":"script already running"},)"
        R"("h3":{"status":"error","error":"forbidden"},)"
        R"("h4":{"status":"error"},)"
        R"("h5":{"status":"error"}},)"
        R"("pending":["h1"],"complete":false})");
  CHECK_FALSE(is_sync_record(rec));

  auto with_submitter = make_async_record("r3", "s", doc_of(R"([{"host":"b","status":"busy"}])"), 7,
                                          Submitter{"bob", "::1"});
  CHECK(json::to_string(with_submitter) ==
        R"({"reqid":"r3","script":"s","mode":"async","created":7,"hosts":{"b":{"status":"busy"}},)"
        R"("pending":[],"complete":true,"submitter":{"username":"bob","source_ip":"::1"}})");
}

TEST_CASE("run store: pending hosts are sorted", "[state]") {
  auto rec =
      doc_of(R"({"mode":"async","hosts":{"z":{"status":"running"},"a":{"status":"accepted"},)"
             R"("m":{"status":"accepted"},"d":{"status":"done","exit":0},)"
             R"("e":{"status":"expired"},"x":{}},"pending":["stale"],"complete":true})");
  CHECK(pending_hosts(rec) == Names{"a", "m", "z"});
  recompute_pending(rec);
  CHECK(member_json(rec, "pending") == R"(["a","m","z"])");
  CHECK(member_json(rec, "complete") == "false");
  // Recomputing keeps the members where they were.
  CHECK(json::to_string(rec).ends_with(R"(,"pending":["a","m","z"],"complete":false})"));
}

TEST_CASE("run store: fetch transitions", "[state]") {
  struct Row {
    const char* before;
    const char* fetched;
    const char* after;
  };
  const Row rows[] = {
      // done replaces the entry with exactly its result.
      {R"({"status":"accepted"})",
       R"({"host":"h","status":"done","exit":0,"stdout":"hi\n","stderr":"","rtt":"3ms","reqid":"r"})",
       R"({"status":"done","exit":0,"stdout":"hi\n","stderr":""})"},
      {R"({"status":"running","fetch_error":"timeout"})",
       R"({"status":"done","exit":2,"stdout":"","stderr":"boom"})",
       R"({"status":"done","exit":2,"stdout":"","stderr":"boom"})"},
      {R"({"status":"running"})",
       R"({"status":"done","exit":-1,"stdout":"x","stderr":"","truncated":true,"timed_out":true})",
       R"({"status":"done","exit":-1,"stdout":"x","stderr":"","truncated":true,"timed_out":true})"},
      {R"({"status":"running"})",
       R"({"status":"done","exit":0,"stdout":"","stderr":"","truncated":false,"timed_out":0})",
       R"({"status":"done","exit":0,"stdout":"","stderr":""})"},
      {R"({"status":"accepted"})", R"({"status":"done"})",
       R"({"status":"done","exit":null,"stdout":null,"stderr":null})"},
      // running stays pending and clears a fetch error.
      {R"({"status":"accepted"})", R"({"status":"running"})", R"({"status":"running"})"},
      {R"({"status":"running","fetch_error":"x"})", R"({"status":"running"})",
       R"({"status":"running"})"},
      // unknown (the agent's 404) is terminal.
      {R"({"status":"accepted","fetch_error":"x"})", R"({"status":"unknown","reqid":"r"})",
       R"({"status":"expired"})"},
      // anything else keeps the status and records the error.
      {R"({"status":"accepted"})", R"({"status":"error","error":"connection refused"})",
       R"({"status":"accepted","fetch_error":"connection refused"})"},
      {R"({"status":"running","fetch_error":"old"})", R"({"status":"error","error":"new"})",
       R"({"status":"running","fetch_error":"new"})"},
      {R"({"status":"accepted"})", R"({"status":"error"})",
       R"({"status":"accepted","fetch_error":"fetch failed"})"},
      {R"({"status":"accepted"})", R"({})",
       R"({"status":"accepted","fetch_error":"fetch failed"})"},
      {R"({"status":"accepted"})", R"({"status":"weird","error":""})",
       R"({"status":"accepted","fetch_error":""})"},
  };
  for (const auto& r : rows) {
    INFO(r.before << " + " << r.fetched);
    auto rec = doc_of(std::string(R"({"mode":"async","hosts":{"h":)") + r.before +
                      R"(,"other":{"status":"accepted"}}})");
    apply_fetch(rec, "h", doc_of(r.fetched));
    CHECK(entry_json(rec, "h") == r.after);
    CHECK(entry_json(rec, "other") == R"({"status":"accepted"})");
  }

  // A name the record does not have, or a record without hosts, is left alone.
  auto rec = doc_of(R"({"mode":"async","hosts":{"h":{"status":"accepted"}}})");
  apply_fetch(rec, "nope", doc_of(R"({"status":"done","exit":0})"));
  CHECK(json::to_string(rec) == R"({"mode":"async","hosts":{"h":{"status":"accepted"}}})");
  auto sync = doc_of(R"({"mode":"sync","hosts":["h"],"results":[]})");
  apply_fetch(sync, "h", doc_of(R"({"status":"done","exit":0})"));
  CHECK(json::to_string(sync) == R"({"mode":"sync","hosts":["h"],"results":[]})");
}

TEST_CASE("run store: the host-failed rule", "[state]") {
  struct Row {
    const char* entry;
    bool failed;
  };
  const Row rows[] = {
      {R"({"status":"done","exit":0})", false},
      {R"({"status":"done","exit":1})", true},
      {R"({"status":"done","exit":-1})", true},
      {R"({"status":"done","exit":"0"})", false},
      {R"({"status":"done","exit":0.0})", false},
      {R"({"status":"done"})", true},
      {R"({"status":"done","exit":null})", true},
      {R"({"status":"busy","error":"script already running"})", true},
      {R"({"status":"error"})", true},
      {R"({"status":"expired"})", true},
      {R"({"status":"running"})", false},
      {R"({"status":"accepted","fetch_error":"x"})", false},
  };
  for (const auto& r : rows) {
    INFO(r.entry);
    CHECK(host_failed(doc_of(r.entry)) == r.failed);
  }
}

TEST_CASE("run store: save and load", "[state]") {
  test::TempDir tmp;
  RunStore store(tmp / "runs");
  CHECK_FALSE(store.load("a1b2c3d4e5f60001")); // no directory yet

  auto rec = make_async_record("a1b2c3d4e5f60001", "deploy", doc_of(kSubmitResults), 1700000000,
                               Submitter{"alice", "10.0.0.1"});
  ::mode_t old = ::umask(0);
  Status st = store.save("a1b2c3d4e5f60001", rec);
  ::umask(old);
  REQUIRE(st.ok());
  CHECK(mode_of(store.dir()) == 0750);
  CHECK(mode_of(store.record_path("a1b2c3d4e5f60001")) == 0640);
  CHECK(store.record_path("a1b2c3d4e5f60001") == tmp / "runs/a1b2c3d4e5f60001.json");
  auto back = store.load("a1b2c3d4e5f60001");
  REQUIRE(back);
  CHECK(json::to_string(*back) == json::to_string(rec));
  // No temp files are left behind.
  auto names = list_dir(store.dir());
  REQUIRE(names.ok());
  CHECK(*names == Names{"a1b2c3d4e5f60001.json"});

  CHECK_FALSE(store.load("ffffffffffffffff")); // unknown reqid
  CHECK_FALSE(store.load("../runs/a1b2c3d4e5f60001"));
  REQUIRE(write_file_atomic(store.record_path("corrupt"), "{not json").ok());
  CHECK_FALSE(store.load("corrupt"));
  REQUIRE(write_file_atomic(store.record_path("array"), "[1,2]").ok());
  CHECK_FALSE(store.load("array"));

  struct Row {
    const char* reqid;
    const char* error;
  };
  const Row bad[] = {
      {"", "invalid reqid ''"},
      {"../evil", "invalid reqid '../evil'"},
      {"a/b", "invalid reqid 'a/b'"},
  };
  for (const auto& r : bad) {
    INFO(r.reqid);
    Status s = store.save(r.reqid, rec);
    CHECK(s.message() == r.error);
  }
  CHECK_FALSE(path_exists(tmp / "evil.json"));
}

TEST_CASE("run store: a record that is not a regular file is not read", "[state]") {
  // The runs directory is group-writable, and root's `status` rewrites what it loads.
  test::TempDir tmp;
  log::init("test", log::Sink::capture);
  log::clear_captured();
  RunStore store(tmp / "runs");
  REQUIRE(make_dirs(store.dir()).ok());
  const std::string target = tmp / "elsewhere.json";
  const char* const body = R"({"reqid":"a1","mode":"sync","results":[]})";
  REQUIRE(write_file_atomic(target, body, {.mode = 0600}).ok());
  REQUIRE(::symlink(target.c_str(), store.record_path("a1").c_str()) == 0);
  REQUIRE(::mkfifo(store.record_path("a2").c_str(), 0600) == 0);
  CHECK_FALSE(store.load("a1"));
  CHECK_FALSE(store.load("a2")); // and does not block
  CHECK_FALSE(store.load("a3")); // absent: no log line
  auto records = log::captured();
  log::shutdown();
  REQUIRE(records.size() == 2);
  CHECK(records[0].level == log::Level::warning);
  CHECK(records[0].line == "ACTION=run-store-fail ERROR=\"cannot read '" + store.record_path("a1") +
                               "': not a regular file\" REQID=a1");
  CHECK(records[1].line.find("REQID=a2") != std::string::npos);
  // The link and its target are left as they were.
  CHECK(test::slurp(target) == body);
  CHECK(mode_of(target) == 0600);
}

TEST_CASE("run store: a record load() could not read back is not saved", "[state]") {
  test::TempDir tmp;
  RunStore store(tmp / "runs");
  // A sync record whose results hold one large output: `fill` bytes of it, plus the rest of
  // the record and the final newline, make the file.
  auto record_with = [](size_t fill) {
    json::Document results;
    results.SetArray();
    json::Value r(rapidjson::kObjectType);
    std::string out(fill, 'x');
    r.AddMember("stdout",
                json::Value(out.data(), static_cast<rapidjson::SizeType>(out.size()),
                            results.GetAllocator()),
                results.GetAllocator());
    results.PushBack(r, results.GetAllocator());
    return make_sync_record("big", "s", {"h"}, results, 1700000000, std::nullopt);
  };
  const size_t overhead = json::to_string(record_with(0)).size() + 1;
  // At the limit: stored and read back.
  REQUIRE(store.save("big", record_with(kMaxRunRecordBytes - overhead)).ok());
  auto back = store.load("big");
  REQUIRE(back);
  CHECK(json::find(*back, "results") != nullptr);
  // One byte more: refused with the sizes, and the stored record is left alone.
  Status st = store.save("big", record_with(kMaxRunRecordBytes - overhead + 1));
  CHECK(st.message() == "run record of " + std::to_string(kMaxRunRecordBytes + 1) +
                            " bytes exceeds the 64 MiB limit");
  CHECK(kMaxRunRecordBytes == 64u << 20);
  CHECK(store.load("big"));
}

TEST_CASE("run store: aggregation persists and completes", "[state]") {
  test::TempDir tmp;
  RunStore store(tmp / "runs");
  const std::string id = "0123456789abcdef";
  auto submit = doc_of(R"([{"host":"h1","status":"accepted"},{"host":"h2","status":"accepted"},)"
                       R"({"host":"h3","status":"accepted"},{"host":"h4","status":"busy"}])");
  REQUIRE(store.save(id, make_async_record(id, "deploy", submit, 1700000000, std::nullopt)).ok());

  // One aggregation pass: load, apply every fetched result, recompute, rewrite.
  auto pass = [&](const std::vector<std::pair<const char*, const char*>>& fetched) {
    auto rec = store.load(id);
    REQUIRE(rec);
    for (const auto& [host, result] : fetched)
      apply_fetch(*rec, host, doc_of(result));
    recompute_pending(*rec);
    REQUIRE(store.save(id, *rec).ok());
    auto back = store.load(id);
    REQUIRE(back);
    return std::move(*back);
  };

  auto rec = pass({{"h1", R"({"status":"done","exit":0,"stdout":"ok","stderr":""})"},
                   {"h2", R"({"status":"running"})"},
                   {"h3", R"({"status":"error","error":"connection refused"})"}});
  CHECK(entry_json(rec, "h1") == R"({"status":"done","exit":0,"stdout":"ok","stderr":""})");
  CHECK(entry_json(rec, "h2") == R"({"status":"running"})");
  CHECK(entry_json(rec, "h3") == R"({"status":"accepted","fetch_error":"connection refused"})");
  CHECK(entry_json(rec, "h4") == R"({"status":"busy"})");
  CHECK(member_json(rec, "pending") == R"(["h2","h3"])");
  CHECK(member_json(rec, "complete") == "false");

  // The retry clears the fetch error; unknown is terminal.
  rec = pass({{"h2", R"({"status":"done","exit":3,"stdout":"","stderr":"bad"})"},
              {"h3", R"({"status":"running"})"}});
  CHECK(entry_json(rec, "h3") == R"({"status":"running"})");
  CHECK(member_json(rec, "pending") == R"(["h3"])");

  rec = pass({{"h3", R"({"status":"unknown"})"}});
  CHECK(entry_json(rec, "h3") == R"({"status":"expired"})");
  CHECK(member_json(rec, "pending") == "[]");
  CHECK(member_json(rec, "complete") == "true");
  CHECK(pending_hosts(rec).empty());
  int failed = 0;
  for (const char* h : {"h1", "h2", "h3", "h4"})
    failed += host_failed(*json::find(*json::find(rec, "hosts"), h)) ? 1 : 0;
  CHECK(failed == 3);
}

TEST_CASE("run store: purge", "[state]") {
  test::TempDir tmp;
  RunStore store(tmp / "runs");
  CHECK(store.purge(unix_now()) == 0); // no directory

  auto rec = make_sync_record("fresh", "s", {"h"}, doc_of("[]"), 1, std::nullopt);
  for (const char* id : {"fresh", "old", "old-2", "day-less-a-minute"})
    REQUIRE(store.save(id, rec).ok());
  age(store.record_path("old"), 100000);
  age(store.record_path("old-2"), 86401 + 60);
  age(store.record_path("day-less-a-minute"), 86400 - 60);
  // Files the store does not name are never purged, however old.
  for (const char* other : {"notes.txt", ".hidden.json", "a.b.json", "old.json.tmp"}) {
    REQUIRE(write_file_atomic(store.dir() + "/" + other, "{}").ok());
    age(store.dir() + "/" + other, 100000);
  }

  CHECK(store.purge(unix_now()) == 2);
  CHECK(store.load("fresh"));
  CHECK(store.load("day-less-a-minute"));
  CHECK_FALSE(store.load("old"));
  CHECK_FALSE(path_exists(store.record_path("old-2")));
  for (const char* other : {"notes.txt", ".hidden.json", "a.b.json", "old.json.tmp"})
    CHECK(path_exists(store.dir() + "/" + other));

  // max_age is a parameter, and `now` is the caller's clock.
  CHECK(store.purge(unix_now(), 3600) == 1);
  CHECK(store.purge(unix_now() + 2 * 86400) == 1);
  CHECK_FALSE(store.load("fresh"));
}
