// Tests for src/state/session_cache.cpp (tag [state]): the CLI's TLS session cache file:
// round trip of opaque bytes, mode 0600, age limit, corrupt files and entries read as empty,
// no write without a change, and merging with entries other runs saved.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/session_cache.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

constexpr int64_t kNow = 1800000000;

using namespace std::string_literals;
const std::string kBinary = "\x00\x01\xff\xfe session \x80"s;

} // namespace

TEST_CASE("session cache: save and load round-trip opaque bytes", "[state]") {
  test::TempDir tmp;
  SessionCache cache(tmp / "lib/tls-sessions");
  cache.load(kNow); // no file: empty
  CHECK(cache.size() == 0);
  CHECK_FALSE(cache.get("web-01:7443"));

  cache.put("web-01:7443", kBinary, kNow);
  cache.put("10.0.0.5:7450", "x", kNow - 10);
  CHECK(cache.get("web-01:7443") == kBinary);
  mode_t old = ::umask(0);
  Status st = cache.save(kNow);
  ::umask(old);
  REQUIRE(st.ok());
  struct stat sb;
  REQUIRE(::stat(cache.path().c_str(), &sb) == 0);
  CHECK((sb.st_mode & 07777) == 0600);
  CHECK(test::slurp(cache.path()) ==
        "{\"10.0.0.5:7450\":{\"session\":\"eA==\",\"saved\":1799999990},"
        "\"web-01:7443\":{\"session\":\"" +
            base64_encode(kBinary) + "\",\"saved\":1800000000}}\n");

  SessionCache again(cache.path());
  again.load(kNow + 60);
  CHECK(again.size() == 2);
  CHECK(again.get("web-01:7443") == kBinary);
  CHECK(again.get("10.0.0.5:7450") == std::string("x"));

  // erase() is saved too.
  again.erase("10.0.0.5:7450");
  CHECK_FALSE(again.get("10.0.0.5:7450"));
  REQUIRE(again.save(kNow + 60).ok());
  SessionCache third(cache.path());
  third.load(kNow + 60);
  CHECK(third.size() == 1);
  CHECK(third.get("web-01:7443") == kBinary);
}

TEST_CASE("session cache: nothing changed, nothing written", "[state]") {
  test::TempDir tmp;
  SessionCache cache(tmp / "tls-sessions");
  cache.load(kNow);
  REQUIRE(cache.save(kNow).ok());
  CHECK_FALSE(path_exists(cache.path()));
  CHECK_FALSE(path_exists(cache.path() + ".lock"));

  cache.put("a", "1", kNow);
  REQUIRE(cache.save(kNow).ok());
  REQUIRE(write_file_atomic(cache.path(), "marker").ok());
  REQUIRE(cache.save(kNow).ok()); // the change was saved already
  CHECK(test::slurp(cache.path()) == "marker");
}

TEST_CASE("session cache: entries older than the maximum age are dropped", "[state]") {
  test::TempDir tmp;
  SessionCache cache(tmp / "tls-sessions");
  cache.load(kNow);
  cache.put("fresh", "f", kNow);
  cache.put("edge", "e", kNow - kSessionMaxAgeSeconds);
  cache.put("old", "o", kNow - kSessionMaxAgeSeconds - 1);
  REQUIRE(cache.save(kNow).ok());
  SessionCache back(cache.path());
  back.load(kNow);
  CHECK(back.get("fresh"));
  CHECK(back.get("edge"));
  CHECK_FALSE(back.get("old")); // dropped when saving, re-read at `now`
  back.load(kNow + kSessionMaxAgeSeconds);
  CHECK(back.size() == 1);
  CHECK(back.get("fresh"));
  back.load(kNow + kSessionMaxAgeSeconds + 1);
  CHECK(back.size() == 0);
}

TEST_CASE("session cache: extreme saved times are aged without overflow", "[state]") {
  // Found with the state_files fuzz target's session-cache check under UBSan: `now - saved`
  // overflowed for a saved near INT64_MIN, and the wrapped age kept the entry as fresh.
  struct Row {
    const char* saved;
    bool kept;
  };
  const Row rows[] = {
      {"-9223372036854775808", false},
      {"-9223372036854775807", false},
      {"-1", false},
      {"9223372036854775807", true}, // in the future: kept, as any not-yet-old entry
  };
  for (const auto& row : rows) {
    INFO(row.saved);
    test::TempDir tmp;
    const std::string path = tmp / "tls-sessions";
    REQUIRE(write_file_atomic(path, std::string("{\"t:7443\":{\"session\":\"eA==\",\"saved\":") +
                                        row.saved + "}}")
                .ok());
    SessionCache cache(path);
    cache.load(kNow);
    CHECK(cache.get("t:7443").has_value() == row.kept);
    cache.put("other:7443", "x", kNow);
    REQUIRE(cache.save(kNow).ok());
    SessionCache back(path);
    back.load(kNow);
    CHECK(back.get("t:7443").has_value() == row.kept);
  }
}

TEST_CASE("session cache: a corrupt file or entry is an empty cache", "[state]") {
  test::TempDir tmp;
  const std::string path = tmp / "tls-sessions";
  struct Row {
    std::string file;
    size_t entries;
  };
  const std::string good = R"("good":{"session":"eA==","saved":1800000000})";
  const Row rows[] = {
      {"", 0},
      {"{", 0},
      {"[]", 0},
      {"null", 0},
      {std::string("\xff\xfe{}", 4), 0},
      {"{" + good + "}", 1},
      {"{" + good + R"(,"bad64":{"session":"e!==","saved":1800000000}})", 1},
      {"{" + good + R"(,"short":{"session":"eA=","saved":1800000000}})", 1},
      {"{" + good + R"(,"empty":{"session":"","saved":1800000000}})", 1},
      {"{" + good + R"(,"nosaved":{"session":"eA=="}})", 1},
      {"{" + good + R"(,"strsaved":{"session":"eA==","saved":"1800000000"}})", 1},
      {"{" + good + R"(,"numsession":{"session":5,"saved":1800000000}})", 1},
      {"{" + good + R"(,"notobj":"eA==","arr":[1]})", 1},
  };
  for (const auto& r : rows) {
    INFO(r.file);
    REQUIRE(write_file_atomic(path, r.file).ok());
    SessionCache cache(path);
    cache.load(kNow);
    CHECK(cache.size() == r.entries);
    if (r.entries) CHECK(cache.get("good") == std::string("x"));
  }

  // A corrupt file is replaced by the next save.
  REQUIRE(write_file_atomic(path, "{garbage").ok());
  SessionCache cache(path);
  cache.load(kNow);
  cache.put("h", "y", kNow);
  REQUIRE(cache.save(kNow).ok());
  CHECK(test::slurp(path) == R"({"h":{"session":"eQ==","saved":1800000000}})"
                             "\n");

  // An unreadable path (here a directory) is empty too.
  REQUIRE(make_dirs(tmp / "dir").ok());
  SessionCache dir(tmp / "dir");
  dir.load(kNow);
  CHECK(dir.size() == 0);
}

TEST_CASE("session cache: save merges with what other runs saved", "[state]") {
  test::TempDir tmp;
  const std::string path = tmp / "tls-sessions";
  {
    SessionCache seed(path);
    seed.load(kNow);
    seed.put("shared", "s0", kNow);
    seed.put("gone", "g0", kNow);
    REQUIRE(seed.save(kNow).ok());
  }
  // Two CLI runs load the same file, then each saves its own changes.
  SessionCache a(path), b(path);
  a.load(kNow);
  b.load(kNow);
  a.put("host-a", "A", kNow + 1);
  a.put("shared", "s-from-a", kNow + 1);
  REQUIRE(a.save(kNow + 1).ok());
  b.put("host-b", "B", kNow + 2);
  b.erase("gone");
  REQUIRE(b.save(kNow + 2).ok());

  // b did not touch "shared", so a's newer value survives; b sees the merged file.
  CHECK(b.get("shared") == std::string("s-from-a"));
  CHECK(b.get("host-a") == std::string("A"));
  SessionCache c(path);
  c.load(kNow + 3);
  CHECK(c.size() == 3);
  CHECK(c.get("host-a") == std::string("A"));
  CHECK(c.get("host-b") == std::string("B"));
  CHECK(c.get("shared") == std::string("s-from-a"));
  CHECK_FALSE(c.get("gone"));
}

TEST_CASE("session cache: a directory that cannot be written fails save", "[state]") {
  test::TempDir tmp;
  REQUIRE(write_file_atomic(tmp / "file", "").ok());
  SessionCache cache(tmp / "file/tls-sessions");
  cache.load(kNow);
  CHECK(cache.size() == 0);
  cache.put("h", "x", kNow);
  CHECK_FALSE(cache.save(kNow).ok());
}

TEST_CASE("session cache: saved_at tells when an entry was stored", "[state]") {
  test::TempDir dir;
  SessionCache c(dir / "tls-sessions");
  c.load(1000);
  CHECK_FALSE(c.saved_at("a@h:1"));
  c.put("a@h:1", "bytes", 1234);
  CHECK(c.saved_at("a@h:1") == 1234);
  c.erase("a@h:1");
  CHECK_FALSE(c.saved_at("a@h:1"));
}
