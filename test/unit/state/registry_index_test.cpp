// Tests for src/state/registry_index.cpp (tag [state]): the registry index is a cache list()
// can trust only as far as each file's stat: hits, changes in place (the racy case), files
// added, removed and renamed, corrupt and foreign indexes, a directory the caller cannot write,
// and scans racing each other and writers (issue 14).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/registry.hpp"
#include "state/registry_index.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

// A scan "now" long after any file here was written: every stamp has settled.
constexpr int64_t kLater = 4'000'000'000'000'000'000;

AgentRecord make_record(const std::string& name, const std::string& ip = "10.0.0.1",
                        std::map<std::string, std::string> tags = {}) {
  AgentRecord r;
  r.hostname = name;
  r.ip = ip;
  r.paired = "2026-11-25T04:17:27Z";
  r.expiry = "Feb 27 04:17:27 2029 GMT";
  r.reqid = "54f730cdc9e94690";
  r.dispatcher_serial = "7f3a9c";
  r.serial_status = "current";
  r.tags = std::move(tags);
  return r;
}

struct Fixture {
  test::TempDir tmp;
  Registry reg{tmp / "agents"};
  std::string index_dir() const { return reg.dir() + "/" + std::string(kRegistryIndexDir); }
  std::string index_path() const { return index_dir() + "/" + std::string(kRegistryIndexFile); }
  void put(const std::string& file, const std::string& text) const {
    REQUIRE(make_dirs(reg.dir()).ok());
    REQUIRE(write_file_atomic(reg.dir() + "/" + file, text).ok());
  }
  // One scan: the records' names and ips ("name=ip"), and the report.
  std::vector<std::string> scan(IndexReport& rep, int64_t now = kLater) const {
    ScanOptions o;
    o.now_ns = now;
    auto s = scan_registry(reg.dir(), &rep, o);
    REQUIRE(s.ok());
    std::vector<std::string> out;
    AgentRecord r;
    for (size_t i = 0; i < s->size(); ++i) {
      s->read(i, r);
      out.push_back(std::string(s->name(i)) + "=" + r.ip);
    }
    return out;
  }
  RegistryIndex index_file() const {
    auto bytes = read_file(index_path());
    REQUIRE(bytes.ok());
    auto index = decode_registry_index(*bytes);
    REQUIRE(index);
    return *index;
  }
  std::vector<IndexEntry> index() const { return index_file().entries; }
  void put_index(const std::string& bytes) const {
    REQUIRE(make_dirs(index_dir()).ok());
    REQUIRE(write_file_atomic(index_path(), bytes).ok());
  }
  // Replaces the index's entries, keeping what it says of the directory.
  void plant(std::vector<IndexEntry> entries) const {
    RegistryIndex index = path_exists(index_path()) ? index_file() : RegistryIndex{};
    index.entries = std::move(entries);
    put_index(encode_registry_index(index));
  }
};

int64_t now_coarse() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

FileStamp stamp_of(const std::string& path) {
  struct stat st;
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return file_stamp(st);
}

// Rewrites a file in place (same inode), keeping its modification time: only the change time
// tells the two contents apart.
void rewrite_in_place(const std::string& path, const std::string& text) {
  struct stat before;
  REQUIRE(::stat(path.c_str(), &before) == 0);
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  const struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::futimens(fd, times) == 0);
  ::close(fd);
}

// Runs `fn` in a child process that cannot write `dir` (as nobody when we are root, else with
// the directory made read-only) and returns what it returned ("" for success).
std::string as_reader_only(const std::string& dir, const std::function<std::string()>& fn) {
  const bool root = ::geteuid() == 0;
  if (!root) REQUIRE(::chmod(dir.c_str(), 0555) == 0);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string msg;
    if (root && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      msg = "cannot become nobody";
    else
      msg = fn();
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!root) ::chmod(dir.c_str(), 0755);
  return msg;
}

} // namespace

TEST_CASE("registry index: its file name is not a record's, for the original or for us",
          "[state]") {
  // The original reads every /^(.+)\.json$/ in the directory as a record.
  CHECK_FALSE(std::string(kRegistryIndexDir).ends_with(".json"));
  CHECK(RecordDir::record_name(kRegistryIndexDir).empty());
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web")).ok());
  REQUIRE(f.reg.list().ok());
  REQUIRE(path_exists(f.index_path()));
  CHECK(f.reg.list_hostnames() == std::vector<std::string>{"web"});
  CHECK(*list_dir(f.reg.dir()) ==
        std::vector<std::string>{".registry.index.d", ".registry.lock", "web.json"});
}

TEST_CASE("registry index: encode and decode round-trip", "[state]") {
  AgentRecord other = make_record("web-01", "10.0.0.9", {{"env", "prod"}, {"role", "web"}});
  other.hostname = "web-01.example.com"; // a hostname member that is not the registry name
  other.lookup_by = "ip";
  other.port = 7450;
  other.extra = {{"note", R"({"x":[1,2]})"}, {"z", "null"}};
  AgentRecord odd = make_record("zz", std::string("a\0b\xc3\xa9", 5)); // any UTF-8
  odd.serial_broadcast = "2027-01-01T00:00:00Z";
  const RegistryIndex index = {
      {7, 4096, 1'700'000'000'000'000'000, 1'700'000'000'000'000'001},
      true,
      {
          {"a-b.json", {1, 2, 3, 4}, true, true, make_record("a-b")},
          {"a.json", {5, 0, -7, -7}, false, true, std::nullopt}, // did not parse
          {"b.json", {}, false, false, std::nullopt},            // a name only
          {"web-01.json", {UINT64_MAX, INT64_MAX, INT64_MIN, INT64_MAX}, true, true, other},
          {"zz.json", {9, 10, 11, 12}, false, true, odd},
      }};
  auto back = decode_registry_index(encode_registry_index(index));
  REQUIRE(back);
  CHECK(*back == index);
  auto none = decode_registry_index(encode_registry_index({}));
  REQUIRE(none);
  CHECK(*none == RegistryIndex{});
}

TEST_CASE("registry index: decode refuses what this version would not write", "[state]") {
  const IndexEntry good{"web.json", {1, 2, 3, 4}, true, true, make_record("web")};
  const std::string valid = encode_registry_index({{}, false, {good}});
  REQUIRE(decode_registry_index(valid));
  struct Row {
    const char* what;
    std::string bytes;
  };
  auto with_entries = [](std::vector<IndexEntry> e) {
    return encode_registry_index({{}, false, std::move(e)});
  };
  auto with_record = [&](const std::function<void(AgentRecord&)>& change) {
    IndexEntry e = good;
    change(*e.record);
    return encode_registry_index({{}, false, {e}});
  };
  std::string flipped = valid;
  flipped[flipped.size() - 3] ^= 0x20;
  std::string other_version = valid;
  other_version[8] = 9;
  std::string other_order = valid;
  std::swap(other_order[12], other_order[15]);
  const Row rows[] = {
      {"empty", ""},
      {"garbage", "not an index at all, but long enough to hold a header's worth of bytes"},
      {"header only", valid.substr(0, 40)},
      {"truncated", valid.substr(0, valid.size() - 1)},
      {"a byte more", valid + "x"},
      {"a flipped byte (the hash)", flipped},
      {"another version", other_version},
      {"another byte order", other_order},
      {"another magic", "X" + valid.substr(1)},
      {"entries out of order", with_entries({{"b.json", {}, true, true, std::nullopt},
                                             {"a.json", {}, true, true, std::nullopt}})},
      {"a duplicate entry", with_entries({{"a.json", {}, true, true, std::nullopt},
                                          {"a.json", {}, true, true, std::nullopt}})},
      {"a file name that is not <agent name>.json",
       with_entries({{"../x.json", {}, true, true, std::nullopt}})},
      {"a file name without .json", with_entries({{"web", {}, true, true, std::nullopt}})},
      {"a hidden file name", with_entries({{".web.json", {}, true, true, std::nullopt}})},
      {"a string that is not UTF-8", with_record([](AgentRecord& r) { r.paired = "\xff"; })},
      {"a tag that is not UTF-8", with_record([](AgentRecord& r) {
         r.tags = {{"env", "pr\xc3"}};
       })},
      {"port 0", with_record([](AgentRecord& r) { r.port = 0; })},
      {"port 70000", with_record([](AgentRecord& r) { r.port = 70000; })},
      {"no serial_status", with_record([](AgentRecord& r) { r.serial_status.clear(); })},
      {"an unknown member that is not JSON", with_record([](AgentRecord& r) {
         r.extra = {{"note", "{oops"}};
       })},
      {"an unknown member named as a known one", with_record([](AgentRecord& r) {
         r.extra = {{"ip", "\"1.2.3.4\""}};
       })},
      {"unknown members repeated", with_record([](AgentRecord& r) {
         r.extra = {{"a", "1"}, {"a", "2"}};
       })},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CHECK_FALSE(decode_registry_index(row.bytes));
  }
}

TEST_CASE("registry index: a second list is served from the index", "[state]") {
  Fixture f;
  for (const char* n : {"web", "db", "cache"})
    REQUIRE(f.reg.register_agent(make_record(n, std::string("10.0.0.") + n[0])).ok());
  f.put("broken.json", "{not json"); // remembered as not parsing, not read again
  IndexReport rep;
  const std::vector<std::string> want = {"cache=10.0.0.c", "db=10.0.0.d", "web=10.0.0.w"};
  CHECK(f.scan(rep) == want);
  CHECK_FALSE(rep.index_used);
  CHECK(rep.reads == 4);
  CHECK(rep.written);
  CHECK(rep.records == 3);
  CHECK(f.index().size() == 4);

  CHECK(f.scan(rep) == want);
  CHECK(rep.index_used);
  CHECK(rep.hits == 4);
  CHECK(rep.reads == 0);
  CHECK_FALSE(rep.written); // nothing changed: nothing written

  // A hit is what the index says: an entry with the file's stamp but another record is
  // believed (so the stamp is all that stands between the index and a stale answer).
  auto entries = f.index();
  REQUIRE(entries[3].file == "web.json");
  entries[3].record->ip = "10.9.9.9";
  f.plant(entries);
  CHECK(f.scan(rep)[2] == "web=10.9.9.9");
  CHECK(rep.hits == 4);
  // ... unless the entry has not settled: then the file is read, and the index mended.
  entries[3].settled = false;
  f.plant(entries);
  CHECK(f.scan(rep) == want);
  CHECK(rep.reads == 1);
  CHECK(rep.written);
  CHECK(f.index()[3].record->ip == "10.0.0.w");
}

TEST_CASE("registry index: a file rewritten in place with the same size and times", "[state]") {
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web", "10.0.0.1")).ok());
  IndexReport rep;
  CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.1"});
  REQUIRE(f.index()[0].settled);
  // Same length, same inode, modification time put back: the change time still moves, once the
  // clock has ticked past the last one (within one tick, that is the racy case, below).
  const FileStamp before = stamp_of(f.reg.record_path("web"));
  const int64_t deadline = now_coarse() + 5'000'000'000;
  while (now_coarse() <= before.ctime_ns && now_coarse() < deadline) {
  }
  std::string text = test::slurp(f.reg.record_path("web"));
  REQUIRE(text.find("10.0.0.1") != std::string::npos);
  text.replace(text.find("10.0.0.1"), 8, "10.0.0.2");
  rewrite_in_place(f.reg.record_path("web"), text);
  const FileStamp after = stamp_of(f.reg.record_path("web"));
  REQUIRE(after.ino == before.ino);
  REQUIRE(after.size == before.size);
  REQUIRE(after.mtime_ns == before.mtime_ns);
  CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.2"});
  CHECK(rep.reads == 1);
  CHECK(rep.written);
}

TEST_CASE("registry index: racy entries, changed within the clock's granularity", "[state]") {
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web", "10.0.0.1")).ok());
  const std::string path = f.reg.record_path("web");
  IndexReport rep;
  // With the real clock, a file written a moment ago has not settled: it is indexed, but its
  // stamp is not trusted.
  ScanOptions real;
  auto s = scan_registry(f.reg.dir(), &rep, real);
  REQUIRE(s.ok());
  REQUIRE(rep.written);
  REQUIRE(f.index().size() == 1);
  CHECK_FALSE(f.index()[0].settled);
  CHECK_FALSE(f.index_file().dir_settled); // the directory changed a moment ago too

  // The worst case: the file changes and its stamp does not (two writes within one tick of
  // the filesystem's clock). Made here by planting an index whose entry has the file's current
  // stamp but the old content.
  auto plant_stale = [&](bool settled) {
    f.plant({{"web.json", stamp_of(path), settled, true, make_record("web", "10.0.0.1")}});
  };
  REQUIRE(write_file_atomic(path, agent_record_json(make_record("web", "10.0.0.7")) + "\n").ok());
  plant_stale(false);
  const int64_t stamp_time = std::max(stamp_of(path).mtime_ns, stamp_of(path).ctime_ns);
  // Not settled: read again, whatever the stamp says...
  CHECK(f.scan(rep, stamp_time + kSettleNs - 1) == std::vector<std::string>{"web=10.0.0.7"});
  CHECK(rep.reads == 1);
  CHECK(rep.written); // the content was wrong
  CHECK_FALSE(f.index()[0].settled);
  // ... and read again on every scan until it settles; the index is not rewritten meanwhile.
  CHECK(f.scan(rep, stamp_time + kSettleNs - 1) == std::vector<std::string>{"web=10.0.0.7"});
  CHECK(rep.reads == 1);
  CHECK_FALSE(rep.written);
  // Once a scan starts a settle time after the stamp, the entry is marked settled (one write)...
  CHECK(f.scan(rep, stamp_time + kSettleNs) == std::vector<std::string>{"web=10.0.0.7"});
  CHECK(rep.reads == 1);
  CHECK(rep.written);
  CHECK(f.index()[0].settled);
  // ... and is a hit from then on.
  CHECK(f.scan(rep, stamp_time + kSettleNs) == std::vector<std::string>{"web=10.0.0.7"});
  CHECK(rep.hits == 1);
  CHECK(rep.reads == 0);
  // The same stale entry marked settled would be believed: settling is what protects.
  plant_stale(true);
  CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.1"});
}

TEST_CASE("registry index: files added, removed and renamed are seen at once", "[state]") {
  Fixture f;
  for (const char* n : {"a", "b", "c"})
    REQUIRE(f.reg.register_agent(make_record(n)).ok());
  IndexReport rep;
  REQUIRE(f.scan(rep).size() == 3);

  REQUIRE(f.reg.register_agent(make_record("b2", "10.0.0.2")).ok());
  CHECK(f.scan(rep) ==
        std::vector<std::string>{"a=10.0.0.1", "b=10.0.0.1", "b2=10.0.0.2", "c=10.0.0.1"});
  CHECK(rep.reads == 1);
  CHECK(rep.hits == 3);
  CHECK(rep.written);

  REQUIRE(f.reg.remove("a").ok());
  REQUIRE(f.reg.remove("c").ok());
  CHECK(f.scan(rep) == std::vector<std::string>{"b=10.0.0.1", "b2=10.0.0.2"});
  CHECK(rep.reads == 0);
  CHECK(rep.written);
  CHECK(f.index().size() == 2);

  AgentEdit e;
  e.rename = "a-b"; // "a-b.json" sorts before "b.json", and "b" was there
  REQUIRE(f.reg.edit("b", e).ok());
  CHECK(f.scan(rep) == std::vector<std::string>{"a-b=10.0.0.1", "b2=10.0.0.2"});
  CHECK(rep.reads == 1);
  CHECK(rep.written);

  // A file replaced by another kind of file, and the last record gone.
  REQUIRE(::unlink(f.reg.record_path("b2").c_str()) == 0);
  REQUIRE(::symlink(f.reg.record_path("a-b").c_str(), f.reg.record_path("b2").c_str()) == 0);
  CHECK(f.scan(rep) == std::vector<std::string>{"a-b=10.0.0.1"});
  REQUIRE(f.reg.remove("a-b").ok());
  CHECK(f.scan(rep).empty());
  CHECK(rep.written);
  // The link is still there, by name.
  CHECK(f.index() == std::vector<IndexEntry>{{"b2.json", {}, false, false, std::nullopt}});
}

TEST_CASE("registry index: a corrupt or foreign index is ignored and rebuilt", "[state]") {
  using namespace std::string_literals;
  const std::string rows[] = {"", "garbage", std::string(4096, '\0'),
                              "CXREGIDX\x02\0\0\0 and then whatever"s};
  for (const auto& bytes : rows) {
    INFO("index of " << bytes.size() << " bytes");
    Fixture f;
    REQUIRE(f.reg.register_agent(make_record("web")).ok());
    f.put_index(bytes);
    IndexReport rep;
    CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.1"});
    CHECK_FALSE(rep.index_used);
    CHECK(rep.reads == 1);
    CHECK(rep.written);
    CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.1"});
    CHECK(rep.hits == 1);
  }
  // An index truncated after its entries check out: the same.
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web")).ok());
  REQUIRE(f.reg.register_agent(make_record("db")).ok());
  IndexReport rep;
  REQUIRE(f.scan(rep).size() == 2);
  std::string bytes = test::slurp(f.index_path());
  f.put_index(bytes.substr(0, bytes.size() / 2));
  CHECK(f.scan(rep).size() == 2);
  CHECK_FALSE(rep.index_used);
  CHECK(rep.written);
  // A directory where the index belongs: listing works, nothing is written, and the report
  // says why.
  REQUIRE(::unlink(f.index_path().c_str()) == 0);
  REQUIRE(::mkdir(f.index_path().c_str(), 0755) == 0);
  CHECK(f.scan(rep).size() == 2);
  CHECK_FALSE(rep.written);
  CHECK(rep.write_error.find("is a directory") != std::string::npos);
  CHECK(f.reg.list()->size() == 2);
}

TEST_CASE("registry index: a directory the caller cannot write still lists", "[state]") {
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web", "10.0.0.1")).ok());
  REQUIRE(f.reg.register_agent(make_record("db", "10.0.0.2")).ok());
  REQUIRE(::chmod(f.tmp.path().c_str(), 0755) == 0);
  REQUIRE(::chmod(f.reg.dir().c_str(), 0755) == 0);
  const std::vector<std::string> want = {"db=10.0.0.2", "web=10.0.0.1"};
  auto reader = [&]() -> std::string {
    IndexReport rep;
    auto s = scan_registry(f.reg.dir(), &rep);
    if (!s.ok()) return "scan failed: " + s.message();
    if (s->size() != 2 || s->name(0) != "db" || s->name(1) != "web") return "wrong records";
    auto all = f.reg.list();
    if (!all.ok() || all->size() != 2) return "list failed";
    if (path_exists(f.index_path())) return "an index appeared";
    if (rep.written) return "claims to have written";
    if (rep.write_error.find("Permission denied") == std::string::npos)
      return "no reason given: '" + rep.write_error + "'";
    return "";
  };
  CHECK(as_reader_only(f.reg.dir(), reader) == "");
  CHECK_FALSE(path_exists(f.index_path()));
  // An index someone else wrote is still used, read-only.
  IndexReport rep;
  CHECK(f.scan(rep, kLater) == want);
  REQUIRE(path_exists(f.index_path()));
  CHECK(as_reader_only(f.reg.dir(), [&]() -> std::string {
          IndexReport r;
          ScanOptions o;
          o.now_ns = kLater;
          auto s = scan_registry(f.reg.dir(), &r, o);
          if (!s.ok() || s->size() != 2) return "scan failed";
          return r.hits == 2 && r.reads == 0 ? "" : "the index was not used";
        }) == "");
}

TEST_CASE("registry index: files others may not read are listed but never cached", "[state]") {
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("web")).ok());
  REQUIRE(f.reg.register_agent(make_record("secret", "10.6.6.6")).ok());
  REQUIRE(::chmod(f.reg.record_path("secret").c_str(), 0600) == 0);
  IndexReport rep;
  const std::vector<std::string> want = {"secret=10.6.6.6", "web=10.0.0.1"};
  CHECK(f.scan(rep) == want);
  // The index is 0644: it must not hold what the file hides, only its name.
  REQUIRE(f.index().size() == 2);
  CHECK(f.index()[0] == IndexEntry{"secret.json", {}, false, false, std::nullopt});
  CHECK(f.index()[1].file == "web.json");
  CHECK((stamp_of(f.index_path()).size > 0));
  struct stat st;
  REQUIRE(::stat(f.index_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(f.scan(rep) == want);
  CHECK(rep.reads == 1);    // read each time...
  CHECK_FALSE(rep.written); // ... without rewriting the index each time
}

TEST_CASE("registry index: list keeps its order and skips what get skips", "[state]") {
  Fixture f;
  REQUIRE(f.reg.register_agent(make_record("zeta")).ok());
  AgentRecord tie = make_record("b-one");
  tie.hostname = "same"; // two files with one hostname keep file-name order
  f.put("b-one.json", agent_record_json(tie));
  tie.hostname = "same";
  tie.ip = "10.0.0.2";
  f.put("a-two.json", agent_record_json(tie));
  f.put("broken.json", "{");
  f.put("big.json", "{\"hostname\":\"big\",\"x\":\"" + std::string(kMaxRecordBytes, 'x') + "\"}");
  f.put(".hidden.json", "{}");
  f.put("notes.txt", "{}");
  REQUIRE(::mkfifo(f.reg.record_path("fifo").c_str(), 0644) == 0);
  for (int round = 0; round < 3; ++round) { // no index, then one (not settled: files are new)
    INFO("round " << round);
    IndexReport rep;
    auto all = f.reg.list(&rep);
    REQUIRE(all.ok());
    std::vector<std::string> got;
    for (const auto& r : *all)
      got.push_back(r.hostname + "=" + r.ip);
    CHECK(got == std::vector<std::string>{"same=10.0.0.2", "same=10.0.0.1", "zeta=10.0.0.1"});
    CHECK(*f.reg.get("zeta") == (*all)[2]);
  }
  // A missing directory is an empty registry, with no index made.
  Registry none(f.tmp / "nowhere");
  REQUIRE(none.list().ok());
  CHECK(none.list()->empty());
  CHECK_FALSE(path_exists(f.tmp / "nowhere"));
}

TEST_CASE("registry index: scans racing each other and writers stay right", "[state]") {
  Fixture f;
  constexpr int kRecords = 200;
  for (int i = 0; i < kRecords; ++i)
    REQUIRE(f.reg.register_agent(make_record(strprintf("a%03d", i), "10.0.0.1")).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  // The writer flips a000 between two ips, alternately by rename and in place (same size),
  // and deletes the index now and then, so that scans rebuild it at the same time.
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i) {
      const std::string ip = i % 2 ? "10.0.0.2" : "10.0.0.1";
      const std::string text = agent_record_json(make_record("a000", ip)) + "\n";
      if (i % 3)
        (void)write_file_atomic(f.reg.record_path("a000"), text);
      else if (int fd = ::open(f.reg.record_path("a000").c_str(), O_WRONLY | O_TRUNC); fd >= 0) {
        (void)!::write(fd, text.data(), text.size());
        ::close(fd);
      }
      if (i % 50 == 0) ::unlink(f.index_path().c_str());
    }
    stop = true;
  });
  auto scanner = [&] {
    while (!stop) {
      auto s = scan_registry(f.reg.dir());
      if (!s.ok() || s->size() < kRecords - 1) { // a000 may be mid-write (truncated)
        ++wrong;
        continue;
      }
      AgentRecord r;
      for (size_t i = 0; i < s->size(); ++i) {
        s->read(i, r);
        if (s->name(i) != "a000" && r.ip != "10.0.0.1") ++wrong;
      }
    }
  };
  std::thread t1(scanner), t2(scanner);
  writer.join();
  t1.join();
  t2.join();
  CHECK(wrong == 0);
  // Quiet now: every scan sees the last write, with the real clock and after settling.
  IndexReport rep;
  for (int64_t now : {int64_t(-1), int64_t(-1), kLater, kLater}) {
    auto got = f.scan(rep, now);
    REQUIRE(got.size() == kRecords);
    CHECK(got[0] == "a000=10.0.0.2");
  }
  CHECK(rep.hits == kRecords);

  // Two processes building the index at once from nothing: both right, and the index one of
  // theirs.
  ::unlink(f.index_path().c_str());
  pid_t kids[2];
  for (pid_t& k : kids) {
    k = ::fork();
    REQUIRE(k >= 0);
    if (k == 0) {
      bool ok = true;
      for (int i = 0; i < 20 && ok; ++i) {
        auto s = scan_registry(f.reg.dir());
        ok = s.ok() && s->size() == kRecords;
        if (i % 5 == 0) ::unlink(f.index_path().c_str());
      }
      ::_exit(ok ? 0 : 1);
    }
  }
  for (pid_t k : kids) {
    int status = 0;
    REQUIRE(::waitpid(k, &status, 0) == k);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
  CHECK(f.scan(rep).size() == kRecords);
}

TEST_CASE("registry index: scan order, and tag matching without decoding", "[state]") {
  Fixture f;
  // Names that share long prefixes, differ past the first eight bytes after them, and are
  // prefixes of each other: the scan's order is the file names' byte order all the same.
  const std::vector<std::string> names = {"agent-0000000001",
                                          "agent-0000000002",
                                          "agent-00000000010",
                                          "agent-0000000001a",
                                          "agent-1",
                                          "agent",
                                          "agent-1.example",
                                          "a",
                                          "a-b",
                                          "ab",
                                          "Z",
                                          "web-01.dc1.example.com",
                                          "web-01.dc2.example.com"};
  const std::vector<std::map<std::string, std::string>> tags = {
      {}, {{"env", "prod"}}, {{"env", "prod"}, {"role", "web"}}, {{"env", ""}, {"role", "db"}}};
  for (size_t i = 0; i < names.size(); ++i)
    REQUIRE(f.reg.register_agent(make_record(names[i], "10.0.0.1", tags[i % tags.size()])).ok());
  std::vector<std::string> files;
  for (const auto& n : names)
    files.push_back(n + ".json");
  std::sort(files.begin(), files.end());
  const std::vector<TagFilter> filters = {{},
                                          {{"env", "prod"}},
                                          {{"env", ""}},
                                          {{"role", "web"}, {"env", "prod"}},
                                          {{"env", "prod"}, {"role", "db"}},
                                          {{"zone", ""}}};
  for (int pass = 0; pass < 2; ++pass) { // records parsed from their files, then index hits
    INFO("pass " << pass);
    IndexReport rep;
    ScanOptions o;
    o.now_ns = kLater;
    auto s = scan_registry(f.reg.dir(), &rep, o);
    REQUIRE(s.ok());
    CHECK(rep.hits == (pass ? names.size() : 0));
    REQUIRE(s->size() == files.size());
    AgentRecord r;
    for (size_t i = 0; i < s->size(); ++i) {
      CHECK(std::string(s->name(i)) + ".json" == files[i]);
      s->read(i, r);
      CHECK(s->hostname(i) == r.hostname);
      for (const auto& filter : filters) {
        INFO(r.hostname << ", filter of " << filter.size());
        CHECK(s->tags_match(i, filter) == tags_match(r.tags, filter));
      }
    }
  }
}

TEST_CASE("registry index: names come from the index while the directory is unchanged", "[state]") {
  Fixture f;
  for (const char* n : {"a", "b"})
    REQUIRE(f.reg.register_agent(make_record(n)).ok());
  REQUIRE(::symlink("a.json", f.reg.record_path("link").c_str()) == 0); // a name, not a record
  IndexReport rep;
  REQUIRE(f.scan(rep).size() == 2);
  CHECK(rep.listed);
  REQUIRE(f.index_file().dir_settled); // kLater: everything has settled
  CHECK(f.index().size() == 3);
  CHECK_FALSE(f.index()[2].cached); // link.json, by name only
  CHECK(f.scan(rep) == std::vector<std::string>{"a=10.0.0.1", "b=10.0.0.1"});
  CHECK_FALSE(rep.listed);
  CHECK(rep.hits == 2);
  CHECK_FALSE(rep.written);
  // Adding, removing or renaming a file changes the directory: it is read again.
  REQUIRE(f.reg.register_agent(make_record("c", "10.0.0.3")).ok());
  CHECK(f.scan(rep).size() == 3);
  CHECK(rep.listed);
  CHECK(rep.written);
  CHECK(f.scan(rep).size() == 3);
  CHECK_FALSE(rep.listed);
  REQUIRE(::unlink(f.reg.record_path("a").c_str()) == 0);
  CHECK(f.scan(rep) == std::vector<std::string>{"b=10.0.0.1", "c=10.0.0.3"});
  CHECK(rep.listed);

  // A directory stamp that has not settled is no proof: a name added within the same tick of
  // the clock leaves the same times. Made here by planting an index that has the directory's
  // current stamp but not one of its names.
  REQUIRE(f.reg.register_agent(make_record("d", "10.0.0.4")).ok());
  struct stat st;
  REQUIRE(::stat(f.reg.dir().c_str(), &st) == 0);
  auto without_d = [&](bool settled) {
    RegistryIndex index = f.index_file();
    index.dir = file_stamp(st);
    index.dir_settled = settled;
    std::erase_if(index.entries, [](const IndexEntry& e) { return e.file == "d.json"; });
    f.put_index(encode_registry_index(index));
  };
  without_d(false);
  CHECK(f.scan(rep).size() == 3); // b, c, d
  CHECK(rep.listed);
  // The same index marked settled is believed: settling is what protects.
  without_d(true);
  CHECK(f.scan(rep).size() == 2);
  CHECK_FALSE(rep.listed);
}

TEST_CASE("registry index: its directory is never followed as a link", "[state]") {
  Fixture f;
  test::TempDir elsewhere;
  REQUIRE(f.reg.register_agent(make_record("web")).ok());
  REQUIRE(::symlink(elsewhere.path().c_str(), f.index_dir().c_str()) == 0);
  IndexReport rep;
  CHECK(f.scan(rep) == std::vector<std::string>{"web=10.0.0.1"});
  CHECK_FALSE(rep.written);
  CHECK(rep.write_error.find("not a directory") != std::string::npos);
  CHECK(list_dir(elsewhere.path())->empty()); // nothing written through the link
  // Nor read through it.
  REQUIRE(::unlink(f.index_dir().c_str()) == 0);
  REQUIRE(f.scan(rep).size() == 1);
  REQUIRE(rep.written);
  REQUIRE(::rename(f.index_path().c_str(), (elsewhere / "index").c_str()) == 0);
  REQUIRE(::rmdir(f.index_dir().c_str()) == 0);
  REQUIRE(::symlink(elsewhere.path().c_str(), f.index_dir().c_str()) == 0);
  CHECK(f.scan(rep).size() == 1);
  CHECK_FALSE(rep.index_used);
  // Made when missing, with the registry directory's mode.
  REQUIRE(::unlink(f.index_dir().c_str()) == 0);
  REQUIRE(::chmod(f.reg.dir().c_str(), 02750) == 0);
  CHECK(f.scan(rep).size() == 1);
  CHECK(rep.written);
  struct stat st;
  REQUIRE(::stat(f.index_dir().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02750);
}
