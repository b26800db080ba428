// Tests for src/state/locks.cpp (tag [state]): lock file names, probing, all-or-nothing
// acquisition, conflicts with other processes and within this one, listing and the log lines
// (dispatcher-and-api §3.4; acceptance row 20 of §12).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "log/log.hpp"
#include "state/locks.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

using Hosts = std::vector<std::string>;

// A child process holding the flock on `path` until destroyed. The child only makes system
// calls between fork and _exit: the test process may have other threads.
class LockHolder {
public:
  explicit LockHolder(const std::string& path) {
    int ready[2], release[2];
    REQUIRE(::pipe(ready) == 0);
    REQUIRE(::pipe(release) == 0);
    const char* p = path.c_str();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(release[1]);
      int fd = ::open(p, O_RDWR | O_CREAT | O_APPEND, 0660);
      char ok = (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) ? 'y' : 'n';
      (void)!::write(ready[1], &ok, 1);
      char c;
      (void)!::read(release[0], &c, 1); // returns at EOF, when the parent closes its end
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    release_fd_ = release[1];
    char ok = 'n';
    REQUIRE(::read(ready[0], &ok, 1) == 1);
    ::close(ready[0]);
    REQUIRE(ok == 'y');
  }
  ~LockHolder() {
    ::close(release_fd_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
};

// Log lines go to the capture sink for the length of a test, not to stderr.
struct CapturedLog {
  CapturedLog() {
    log::init("test", log::Sink::capture);
    log::clear_captured();
  }
  ~CapturedLog() { log::shutdown(); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
};

std::vector<std::string> captured_lines() {
  std::vector<std::string> out;
  for (const auto& r : log::captured())
    out.push_back(r.line);
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

} // namespace

TEST_CASE("locks: file names", "[state]") {
  struct Row {
    const char *host, *script, *name;
  };
  const Row rows[] = {
      {"web-01", "deploy", "web-01--deploy.lock"},
      {"web-01:7450", "deploy", "web-01_7450--deploy.lock"},
      {"db.example.com", "backup_db", "db.example.com--backup_db.lock"},
      {"a b/c", "x;y", "a_b_c--x_y.lock"},
      {"../etc", "passwd", ".._etc--passwd.lock"},
      {"caf\xc3\xa9", "s", "caf__--s.lock"},
  };
  for (const auto& r : rows) {
    INFO(r.host << " " << r.script);
    CHECK(lock_file_name(r.host, r.script) == r.name);
  }
}

TEST_CASE("locks: long components are shortened below NAME_MAX, and stay distinct", "[state]") {
  const std::string h100(100, 'h'), h101(101, 'h'), h300(300, 'h');
  const std::string s300(300, 's');
  // FNV-1a 64 of the sanitised component, as 16 hex digits.
  struct Row {
    std::string host, script, name;
  };
  const Row rows[] = {
      // Up to 100 bytes, names are exactly the original's (shared with a Perl dispatcher).
      {h100, "noop", h100 + "--noop.lock"},
      {h101, "noop", std::string(80, 'h') + "-db8646b848536e87--noop.lock"},
      {h300, "noop", std::string(80, 'h') + "-0e8934f306ff03d5--noop.lock"},
      {"web", s300, "web--" + std::string(80, 's') + "-57134d16fc78a461.lock"},
      // Sanitised first, so strings that sanitise alike still share one lock.
      {std::string(150, ':'), "x", std::string(80, '_') + "-40151bc1f9afc11f--x.lock"},
      {std::string(150, '/'), "x", std::string(80, '_') + "-40151bc1f9afc11f--x.lock"},
  };
  for (const auto& r : rows) {
    INFO(r.host.size() << " " << r.script.size());
    std::string name = lock_file_name(r.host, r.script);
    CHECK(name.size() <= 255);
    CHECK(name == r.name);
  }
  // Same first 80 bytes, different ends: different files.
  CHECK(lock_file_name(h300 + "a", "s") != lock_file_name(h300 + "b", "s"));
}

TEST_CASE("locks: a 300-byte host can be locked, listed and probed", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  const std::string host(300, 'a');
  auto a = locks.acquire({host}, "noop");
  REQUIRE(a.status.ok()); // the original failed with "File name too long"
  CHECK(a.ok());
  CHECK(locks.check_available({host}, "noop") == Hosts{host + ":noop"});
  std::string shortened = lock_file_name(host, "noop");
  shortened.resize(shortened.size() - std::string("--noop.lock").size());
  CHECK(locks.list_held() == std::vector<HeldLock>{{shortened, "noop"}});
}

TEST_CASE("locks: probes create no lock files", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  REQUIRE(make_dirs(locks.dir()).ok());
  CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
  CHECK(locks.list_held().empty());
  auto names = list_dir(locks.dir());
  REQUIRE(names.ok());
  CHECK(names->empty());
}

TEST_CASE("locks: a symbolic link planted as a lock file is never followed", "[state]") {
  // The locks directory is group-writable and root runs `ced`: a member of the group must
  // not make root create, open or chmod a file elsewhere.
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  REQUIRE(make_dirs(locks.dir()).ok());
  const std::string missing = tmp / "created-by-root", existing = tmp / "existing";
  REQUIRE(write_file_atomic(existing, "keep", {.mode = 0600}).ok());
  REQUIRE(::symlink(missing.c_str(), (locks.dir() + "/host-a--deploy.lock").c_str()) == 0);
  REQUIRE(::symlink(existing.c_str(), (locks.dir() + "/host-b--deploy.lock").c_str()) == 0);
  // Someone holds the existing target: through the link it would be reported as held.
  LockHolder holder(existing);

  CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
  CHECK(locks.list_held().empty());
  for (const char* host : {"host-a", "host-b"}) {
    INFO(host);
    auto a = locks.acquire({host}, "deploy");
    CHECK_FALSE(a.ok());
    CHECK(a.conflicts.empty());
    CHECK(a.status.message() ==
          "cannot open lock '" + locks.dir() + "/" + host + "--deploy.lock': not a regular file");
    CHECK(a.held.size() == 0);
  }
  CHECK_FALSE(path_exists(missing));
  CHECK(mode_of(existing) == 0600);
  CHECK(test::slurp(existing) == "keep");
  // Other pairs are unaffected.
  CHECK(locks.acquire({"host-c"}, "deploy").ok());
}

TEST_CASE("locks: a new lock file is group-writable despite the umask", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  mode_t old = ::umask(077);
  auto a = locks.acquire({"host-a"}, "deploy");
  ::umask(old);
  REQUIRE(a.ok());
  CHECK(mode_of(locks.dir() + "/host-a--deploy.lock") == 0660);
  // The directory is a shared state directory.
  CHECK((mode_of(locks.dir()) & 0770) == 0770);
}

TEST_CASE("locks: check, acquire, release, re-acquire", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  // A fresh (missing) directory holds nothing.
  CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
  CHECK(locks.list_held().empty());

  auto a = locks.acquire({"host-a", "host-b"}, "deploy");
  REQUIRE(a.ok());
  CHECK(a.held.size() == 2);
  CHECK(locks.list_held() == std::vector<HeldLock>{{"host-a", "deploy"}, {"host-b", "deploy"}});
  // Another script on the same host is another lock.
  CHECK(locks.check_available({"host-a"}, "backup").empty());

  a.held.release();
  CHECK(a.held.size() == 0);
  CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
  CHECK(locks.list_held().empty());

  auto again = locks.acquire({"host-a", "host-b"}, "deploy");
  CHECK(again.ok());
  CHECK(again.held.size() == 2);
  // Released when the LockSet goes away (here: move-assigned over).
  again.held = LockSet();
  CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
}

TEST_CASE("locks: a second acquire in the same process conflicts", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  auto first = locks.acquire({"host-a"}, "deploy");
  REQUIRE(first.ok());
  auto second = Locks(tmp / "locks").acquire({"host-a"}, "deploy");
  CHECK_FALSE(second.ok());
  CHECK(second.status.ok());
  CHECK(second.conflicts == Hosts{"host-a:deploy"});
  CHECK(second.held.size() == 0);
  CHECK(locks.check_available({"host-a"}, "deploy") == Hosts{"host-a:deploy"});
  first.held.release();
  CHECK(locks.acquire({"host-a"}, "deploy").ok());
}

TEST_CASE("locks: conflicts with another process", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  REQUIRE(make_dirs(locks.dir()).ok());
  LockHolder holder(locks.dir() + "/" + lock_file_name("host-c", "deploy"));

  struct Row {
    Hosts hosts;
    Hosts conflicts;
  };
  const Row rows[] = {
      {{"host-c"}, {"host-c:deploy"}},
      {{"host-a", "host-b"}, {}},
      // A partial multi-host conflict reports only the held pair.
      {{"host-a", "host-c", "host-b"}, {"host-c:deploy"}},
      {{"host-c", "host-c"}, {"host-c:deploy"}}, // duplicates are probed once
  };
  for (const auto& r : rows) {
    INFO(join(r.hosts, ","));
    CHECK(locks.check_available(r.hosts, "deploy") == r.conflicts);
    auto a = locks.acquire(r.hosts, "deploy");
    CHECK(a.status.ok());
    CHECK(a.conflicts == r.conflicts);
    CHECK(a.ok() == r.conflicts.empty());
    CHECK(a.held.size() == (r.conflicts.empty() ? r.hosts.size() : 0));
    a.held.release();
    // A failed acquire rolls back the others: every pair but the held one is free again.
    CHECK(locks.check_available({"host-a", "host-b"}, "deploy").empty());
  }
  CHECK(locks.list_held() == std::vector<HeldLock>{{"host-c", "deploy"}});
}

TEST_CASE("locks: every conflicting pair is reported, in input order", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  auto held = locks.acquire({"b", "d"}, "s");
  REQUIRE(held.ok());
  auto a = locks.acquire({"d", "a", "b", "c"}, "s");
  CHECK(a.conflicts == Hosts{"d:s", "b:s"});
  CHECK(a.held.size() == 0);
  held.held.release();
  CHECK(locks.check_available({"a", "b", "c", "d"}, "s").empty());
}

TEST_CASE("locks: host strings that name the same file are locked once", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  auto a = locks.acquire({"web-01:7450", "web-01_7450", "web-01:7450"}, "deploy");
  CHECK(a.ok());
  CHECK(a.held.size() == 1);
  CHECK(locks.check_available({"web-01:7450"}, "deploy") == Hosts{"web-01:7450:deploy"});
}

TEST_CASE("locks: list_held splits names as the original's greedy regex", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  CHECK(locks.list_held().empty()); // no directory
  REQUIRE(make_dirs(locks.dir()).ok());
  struct Row {
    const char* file;
    bool listed;
    HeldLock lock;
  };
  const Row rows[] = {
      {"web--deploy.lock", true, {"web", "deploy"}},
      {"a--b--c.lock", true, {"a--b", "c"}},
      {"a---b.lock", true, {"a-", "b"}},
      {"----x.lock", true, {"--", "x"}},
      {"a--b--.lock", true, {"a", "b--"}},
      {"x--.lock", false, {}},
      {"--x.lock", false, {}},
      {"nodash.lock", false, {}},
      {"web--deploy.lck", false, {}},
      {".lock", false, {}},
  };
  std::vector<FileLock> held;
  std::vector<HeldLock> expected;
  for (const auto& r : rows) {
    FileLock l;
    REQUIRE(l.lock(locks.dir() + "/" + r.file, false).ok());
    held.push_back(std::move(l));
    if (r.listed) expected.push_back(r.lock);
  }
  // A lock file nobody holds is not listed.
  REQUIRE(write_file_atomic(locks.dir() + "/idle--deploy.lock", "").ok());
  std::sort(expected.begin(), expected.end(), [](const HeldLock& a, const HeldLock& b) {
    return a.host + ":" + a.script < b.host + ":" + b.script;
  });
  CHECK(locks.list_held() == expected);
  held.clear();
  CHECK(locks.list_held().empty());
}

TEST_CASE("locks: log lines", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  Locks locks(tmp / "locks");
  {
    auto a = locks.acquire({"h1", "h2"}, "deploy");
    REQUIRE(a.ok());
    auto b = locks.acquire({"h0", "h2", "h1"}, "deploy");
    REQUIRE_FALSE(b.ok());
    CHECK(locks.check_available({"h1"}, "deploy").size() == 1); // probes log nothing
    LockSet empty;
    empty.release(); // nothing held: no line
  }
  CHECK(captured_lines() == std::vector<std::string>{
                                "ACTION=lock-acquire HOST=h1 SCRIPT=deploy",
                                "ACTION=lock-acquire HOST=h2 SCRIPT=deploy",
                                "ACTION=lock-conflict CONFLICTS=h2:deploy,h1:deploy",
                                "ACTION=lock-release HOSTS=h1,h2 SCRIPT=deploy",
                            });
  auto records = log::captured();
  REQUIRE(records.size() == 4);
  CHECK(records[0].level == log::Level::info);
  CHECK(records[2].level == log::Level::warning);
  CHECK(records[3].level == log::Level::info);
}

TEST_CASE("locks: an unusable directory is an I/O failure, not a conflict", "[state]") {
  test::TempDir tmp;
  CapturedLog capture;
  REQUIRE(write_file_atomic(tmp / "file", "").ok());
  Locks locks(tmp / "file/locks");
  auto a = locks.acquire({"h"}, "s");
  CHECK_FALSE(a.ok());
  CHECK_FALSE(a.status.ok());
  CHECK(a.conflicts.empty());
  CHECK(locks.check_available({"h"}, "s").empty());
  CHECK(locks.list_held().empty());
}
