// Tests for src/agent/async_repair.cpp (tag [agent]): running records are found, their
// script's lock probed, and those whose supervisor is gone are marked interrupted.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "agent/async_job.hpp"
#include "agent/async_repair.hpp"
#include "base/files.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "testutil.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::agent;

namespace {

void put(const std::string& path, const std::string& text) {
  REQUIRE(make_dirs(dirname(path), 0750).ok());
  std::ofstream(path) << text;
}

std::string running(const std::string& reqid, const std::string& script,
                    const std::string& owner = "disp-1") {
  return R"({"reqid":")" + reqid + R"(","status":"running","script":")" + script +
         R"(","owner":")" + owner + R"(","started":"2026-12-06T07:00:00Z"})";
}

std::string status_of(const std::string& path) {
  auto doc = json::parse(test::slurp(path));
  REQUIRE(doc.ok());
  return *json::get_string(*doc, "status");
}

// Creates the script's lock file, as an agent that once ran it would have.
void make_lock(const std::string& runs, const std::string& script) {
  FileLock l;
  REQUIRE(make_dirs(runs + "/.locks", 0750).ok());
  REQUIRE(l.lock(async_lock_path(runs, script), false, 0640).ok());
}

} // namespace

TEST_CASE("find_running_records: owner dirs and flat, running only, small regular files",
          "[agent]") {
  test::TempDir d;
  std::string runs = d / "runs";
  put(runs + "/disp-1/a.json", running("a", "s1"));
  put(runs + "/disp-2/b.json", running("b", "s2", "disp-2"));
  put(runs + "/flat.json", running("flat", "s3"));
  put(runs + "/disp-1/done.json",
      R"({"reqid":"done","status":"done","script":"s1","stdout":"\"running\""})");
  put(runs + "/disp-1/noscript.json", R"({"reqid":"x","status":"running"})");
  put(runs + "/disp-1/bad.json", "{\"running\"");
  put(runs + "/disp-1/big.json",
      running("big", "s1").insert(1, R"("pad":")" + std::string(17000, 'x') + "\","));
  put(runs + "/disp-1/a.json.tmp", running("tmp", "s1"));
  put(runs + "/.locks/x.json", running("lock", "s1"));
  REQUIRE(::symlink((runs + "/disp-1/a.json").c_str(), (runs + "/disp-1/link.json").c_str()) == 0);
  REQUIRE(::symlink((runs + "/disp-1").c_str(), (runs + "/linked-dir").c_str()) == 0);

  auto found = find_running_records(runs);
  std::vector<std::string> ids;
  for (const auto& r : found)
    ids.push_back(r.reqid + "/" + r.script + "/" + r.owner);
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<std::string>{"a/s1/disp-1", "b/s2/disp-2", "flat/s3/disp-1"});
  CHECK(find_running_records(d / "missing").empty());
}

TEST_CASE("probe_async_lock: free, held by another descriptor, or unknown", "[agent]") {
  test::TempDir d;
  std::string runs = d / "runs";
  CHECK(probe_async_lock(runs, "s1") == LockProbe::unknown); // never created
  make_lock(runs, "s1");
  CHECK(probe_async_lock(runs, "s1") == LockProbe::free);
  CHECK(probe_async_lock(runs, "s1") == LockProbe::free); // the probe let it go
  FileLock held;
  REQUIRE(held.lock(async_lock_path(runs, "s1"), false).ok());
  CHECK(probe_async_lock(runs, "s1") == LockProbe::held);
  held.unlock();
  CHECK(probe_async_lock(runs, "s1") == LockProbe::free);
}

TEST_CASE("mark_interrupted replaces a record that still says running, and only that", "[agent]") {
  test::TempDir d;
  std::string path = d / "runs/disp-1/r1.json";
  put(path, running("r1", "s1"));
  RunningRecord rec{path, "r1", "s1", "disp-1", "2026-12-06T07:00:00Z"};

  auto marked = mark_interrupted(rec, "2026-12-06T08:00:00Z");
  REQUIRE(marked.ok());
  CHECK(*marked);
  CHECK(test::slurp(path) ==
        std::string(R"({"reqid":"r1","status":"done","script":"s1","owner":"disp-1",)"
                    R"("started":"2026-12-06T07:00:00Z","finished":"2026-12-06T08:00:00Z",)"
                    R"("exit":-1,"stdout":"","stderr":")") +
            kAsyncInterrupted + R"(","error":")" + kAsyncInterrupted + R"("})");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);

  // Done meanwhile (the supervisor won the race), removed, or a new job's record: untouched.
  const std::string done = R"({"reqid":"r1","status":"done","exit":0})";
  put(path, done);
  CHECK_FALSE(*mark_interrupted(rec, "x"));
  CHECK(test::slurp(path) == done);
  std::string other = running("r1", "s1");
  other.replace(other.find("07:00:00"), 8, "07:30:00");
  put(path, other);
  CHECK_FALSE(*mark_interrupted(rec, "x"));
  CHECK(test::slurp(path) == other);
  ::unlink(path.c_str());
  CHECK_FALSE(*mark_interrupted(rec, "x"));
  CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("AsyncRecordRepair marks the records whose lock is free, logs each", "[agent]") {
  test::TempDir d;
  std::string runs = d / "runs";
  put(runs + "/disp-1/gone.json", running("gone", "s1"));
  put(runs + "/disp-2/alive.json", running("alive", "s2", "disp-2"));
  put(runs + "/disp-1/nolock.json", running("nolock", "s3"));
  make_lock(runs, "s1");
  make_lock(runs, "s2");
  FileLock supervisor; // a live job of s2
  REQUIRE(supervisor.lock(async_lock_path(runs, "s2"), false).ok());

  log::init("ctrl-exec-agent", log::Sink::capture);
  event::Loop loop;
  AsyncRecordRepair repair(loop, [&] { return runs; });
  bool done = false;
  repair.sweep([&] { done = true; });
  loop.run();
  CHECK(done);
  CHECK(repair.sweeps() == 1);
  CHECK(status_of(runs + "/disp-1/gone.json") == "done");
  CHECK(status_of(runs + "/disp-2/alive.json") == "running");
  CHECK(status_of(runs + "/disp-1/nolock.json") == "running");
  auto logs = log::captured();
  REQUIRE(logs.size() == 1);
  CHECK(logs[0].level == log::Level::warning);
  CHECK(logs[0].line == "ACTION=async-interrupted DISPATCHER=disp-1 REQID=gone SCRIPT=s1");

  // Once the live job has ended without a result, the next sweep repairs its record too.
  supervisor.unlock();
  log::clear_captured();
  repair.sweep();
  loop.run();
  CHECK(status_of(runs + "/disp-2/alive.json") == "done");
  CHECK(log::captured().size() == 1);
  log::shutdown();
}
