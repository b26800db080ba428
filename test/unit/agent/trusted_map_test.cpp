// Tests for src/agent/trusted_map.cpp (tag [agent]): parsing as the original does, the wire
// serial storage rule of §4.2.1, and atomic edits that keep other entries.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "agent/trusted_map.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "pki/serial.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("trusted map lines are read with canon, bit-exact", "[agent]") {
  struct Row {
    const char* text;
    std::vector<std::pair<std::string, std::string>> want;
  };
  const Row rows[] = {
      {"", {}},
      {"# only a comment\n\n   \n", {}},
      {"deadbeef disp-1\n", {{"deadbeef", "disp-1"}}},
      {"DEADBEEF disp-1 # inline comment\n", {{"deadbeef", "disp-1"}}},
      {"  0xDEADBEEF\tdisp-1  \n", {{"deadbeef", "disp-1"}}},
      {"serial=DEADBEEF d\n", {{"deadbeef", "d"}}},
      {"DE:AD:BE:EF d\n", {{"deadbeef", "d"}}},
      {"00:DE:AD:BE:EF d\n", {{"deadbeef", "d"}}},
      // Decimal lines mean what the original reads: 255 is ff (upstream trusted-dispatchers.t).
      {"255 d\n", {{"ff", "d"}}},
      {"3735928559 d\n", {{"deadbeef", "d"}}},
      // Our colon form for all-digit keys reads back literally.
      {"00:13 d\n01:00 e\n", {{"100", "e"}, {"13", "d"}}},
      // Lines without an id, with an invalid id, or with an unusable serial are skipped.
      {"deadbeef\n", {}},
      {"deadbeef has space\n", {}},
      {"deadbeef -bad\n", {}},
      {"zz!! d\n", {}},
      {"# d\n", {}},
      // Later lines win.
      {"ab one\nAB two\n", {{"ab", "two"}}},
      {"ab one\ncd two", {{"ab", "one"}, {"cd", "two"}}},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto m = parse_trusted_map(r.text);
    std::vector<std::pair<std::string, std::string>> got(m.entries().begin(), m.entries().end());
    CHECK(got == r.want);
  }
}

TEST_CASE("wire serials stay trusted whatever their digits (§4.2.1 table)", "[agent]") {
  // H = the dispatcher's certificate serial as OpenSSL prints it; the Perl dispatcher sends
  // canon(H) on the wire. The agent stores it, writes the file, reads it back (as after a reload
  // or a restart) and must then find canon(peer serial).
  struct Row {
    const char* h;
  };
  const Row rows[] = {{"02"},   {"0A"},     {"10"},   {"19"},        {"25"},
                      {"0100"}, {"7F3A9C"}, {"0597"}, {"1234567890"}};
  for (const auto& r : rows) {
    INFO(r.h);
    std::string wire = pki::canon_serial(r.h);
    std::string key = wire_serial_key(wire);
    TrustedMap m;
    REQUIRE(m.add(key, "disp", false).ok());
    auto reread = parse_trusted_map(format_trusted_map(m));
    const std::string* id = reread.find(peer_key(to_lower(r.h)));
    REQUIRE(id != nullptr);
    CHECK(*id == "disp");
  }
}

TEST_CASE("wire_serial_key and map_line_serial", "[agent]") {
  struct Row {
    const char* wire;
    const char* key;
    const char* line;
  };
  const Row rows[] = {
      {"7f3a9c", "7f3a9c", "7f3a9c"},
      {"7F3A9C", "7f3a9c", "7f3a9c"},
      {"0a", "a", "a"},
      {"13", "13", "00:13"},
      {"64", "64", "00:64"},
      {"100", "100", "01:00"},
      {"2", "2", "2"},
      {"0x7F3A9C", "7f3a9c", "7f3a9c"},
      {"7F:3A:9C", "7f3a9c", "7f3a9c"},
      {"", "", ""},
      {"nonsense", "", ""},
  };
  for (const auto& r : rows) {
    INFO(r.wire);
    CHECK(wire_serial_key(r.wire) == r.key);
    if (*r.key) CHECK(map_line_serial(r.key) == r.line);
  }
}

TEST_CASE("add and remove follow the rotation rules", "[agent]") {
  TrustedMap m;
  CHECK(*m.add("aa", "one", true));
  CHECK_FALSE(*m.add("aa", "one", true)); // already there
  auto steal = m.add("aa", "two", true);
  REQUIRE_FALSE(steal.ok());
  CHECK(steal.message() == "serial already trusted for dispatcher 'one'");
  CHECK(*m.add("aa", "two", false)); // pairing re-points
  CHECK(*m.find("aa") == "two");
  CHECK_FALSE(m.add("", "x", false).ok());
  CHECK_FALSE(m.add("ab", "bad id", false).ok());

  auto other = m.remove("aa", "one");
  REQUIRE_FALSE(other.ok());
  CHECK(other.message() == "serial not owned by 'one'");
  CHECK_FALSE(*m.remove("bb", "two")); // absent: no-op
  CHECK(*m.remove("aa", "two"));
  CHECK(m.empty());
}

TEST_CASE("the map file is rewritten atomically with its header and mode 0644", "[agent]") {
  test::TempDir dir;
  std::string path = dir / "ctrl-exec-dispatchers";
  REQUIRE(load_trusted_map(path).ok()); // absent = empty
  CHECK(load_trusted_map(path)->empty());

  REQUIRE(write_file_atomic(path, "# hand-written\n255 old-one\n").ok());
  REQUIRE(add_trusted_dispatcher(path, "13", "disp-b").ok());
  REQUIRE(add_trusted_dispatcher(path, "7f3a9c", "disp-a").ok());
  std::string text = test::slurp(path);
  CHECK(text == std::string(kTrustedMapHeader) + "00:13 disp-b\n7f3a9c disp-a\nff old-one\n");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);

  // An edit that fails or changes nothing leaves the file as it was.
  auto bad = edit_trusted_map(path, [](TrustedMap& m) { return m.remove("ff", "someone"); });
  CHECK_FALSE(bad.ok());
  REQUIRE(edit_trusted_map(path, [](TrustedMap& m) { return m.remove("ff", "old-one"); }).ok());
  CHECK(test::slurp(path) == std::string(kTrustedMapHeader) + "00:13 disp-b\n7f3a9c disp-a\n");
  CHECK_FALSE(add_trusted_dispatcher(path, "not-a-serial", "x").ok());
  CHECK_FALSE(add_trusted_dispatcher(dir / "missing-dir/map", "ab", "x").ok());
}

TEST_CASE("a map that is not a regular file is refused, not read or edited through", "[agent]") {
  // The map's directory belongs to the agent's user; root edits the map at request-pairing.
  test::TempDir dir;
  const std::string elsewhere = dir / "elsewhere";
  const std::string content = "aa root-only-line\n";
  REQUIRE(write_file_atomic(elsewhere, content, {.mode = 0600}).ok());
  const std::string link = dir / "linked-map", fifo = dir / "fifo-map";
  REQUIRE(::symlink(elsewhere.c_str(), link.c_str()) == 0);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& path : {link, fifo}) {
    INFO(path);
    auto m = load_trusted_map(path);
    REQUIRE_FALSE(m.ok());
    CHECK(m.message() == "cannot read '" + path + "': not a regular file");
    // An edit fails before writing anything: no entry of the target is copied into a map.
    CHECK_FALSE(add_trusted_dispatcher(path, "7f3a9c", "disp-a").ok());
  }
  struct stat st;
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(test::slurp(elsewhere) == content);
  // Nor is the lock file next to the map created through a link.
  REQUIRE(::symlink((dir / "lock-target").c_str(), (dir / "map.lock").c_str()) == 0);
  REQUIRE(add_trusted_dispatcher(dir / "map", "7f3a9c", "disp-a").ok());
  CHECK_FALSE(path_exists(dir / "lock-target"));
}
