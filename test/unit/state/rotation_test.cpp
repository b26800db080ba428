// Tests for src/state/rotation.cpp (tag [state]): the rotation.json format, unknown members,
// corrupt and missing files, and the file mode (dispatcher-and-api §3.5; acceptance row 30 of
// §12, the load_state part).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "state/rotation.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

RotationState rotated() {
  RotationState s;
  s.current_serial = "7f3a9c0001";
  s.previous_serial = "1a2b";
  s.rotated_at = "2026-11-25T04:17:27Z";
  s.overlap_expires = "2026-12-25T04:17:27Z";
  s.overlap_days = 30;
  return s;
}

} // namespace

TEST_CASE("rotation: the file format round-trips", "[state]") {
  struct Row {
    RotationState state;
    const char* json;
  };
  RotationState first = rotated();
  first.previous_serial = "";
  RotationState retired = rotated();
  retired.previous_serial.reset();
  retired.previous_retired = "2026-12-26T00:00:00Z";
  retired.overlap_days = 7;
  RotationState extra = rotated();
  extra.extra = {{"rotated_by", "\"ops\""}, {"history", "[1,{\"a\":null}]"}};
  const Row rows[] = {
      {rotated(), R"({"current_serial":"7f3a9c0001","previous_serial":"1a2b",)"
                  R"("rotated_at":"2026-11-25T04:17:27Z","overlap_expires":"2026-12-25T04:17:27Z",)"
                  R"("overlap_days":30})"},
      {first, R"({"current_serial":"7f3a9c0001","previous_serial":"",)"
              R"("rotated_at":"2026-11-25T04:17:27Z","overlap_expires":"2026-12-25T04:17:27Z",)"
              R"("overlap_days":30})"},
      {retired, R"({"current_serial":"7f3a9c0001","rotated_at":"2026-11-25T04:17:27Z",)"
                R"("overlap_expires":"2026-12-25T04:17:27Z","overlap_days":7,)"
                R"("previous_retired":"2026-12-26T00:00:00Z"})"},
      {extra, R"({"current_serial":"7f3a9c0001","previous_serial":"1a2b",)"
              R"("rotated_at":"2026-11-25T04:17:27Z","overlap_expires":"2026-12-25T04:17:27Z",)"
              R"("overlap_days":30,"rotated_by":"ops","history":[1,{"a":null}]})"},
  };
  for (const auto& r : rows) {
    INFO(r.json);
    CHECK(rotation_json(r.state) == r.json);
    auto back = parse_rotation(r.json);
    REQUIRE(back.ok());
    CHECK(*back == r.state);
  }
}

TEST_CASE("rotation: what a file may hold", "[state]") {
  // Members in another order, unknown ones between them, loose but readable types.
  auto s = parse_rotation(R"({"x":1,"overlap_days":"14","current_serial":"ab","y":"z",)"
                          R"("previous_serial":null})");
  REQUIRE(s.ok());
  CHECK(s->current_serial == "ab");
  CHECK_FALSE(s->previous_serial);
  CHECK(s->overlap_days == 14);
  CHECK(s->rotated_at.empty());
  CHECK(s->extra == std::vector<std::pair<std::string, std::string>>{{"x", "1"}, {"y", "\"z\""}});
  CHECK(rotation_json(*s) ==
        R"({"current_serial":"ab","rotated_at":"","overlap_expires":"","overlap_days":14,)"
        R"("x":1,"y":"z"})");

  // An empty object is a state without a current serial (it broadcasts nothing).
  auto empty = parse_rotation("{}");
  REQUIRE(empty.ok());
  CHECK(empty->current_serial.empty());
  CHECK(empty->overlap_days == 30);
  CHECK(parse_rotation(R"({"overlap_days":45.0})")->overlap_days == 45);

  struct Row {
    const char* text;
    const char* error; // a substring of the message
  };
  const Row rows[] = {
      {"", "invalid JSON"},
      {"{", "invalid JSON"},
      {"[]", "not a JSON object"},
      {"\"x\"", "not a JSON object"},
      {R"({"current_serial":5})", "current_serial must be a string"},
      {R"({"previous_serial":[]})", "previous_serial must be a string"},
      {R"({"rotated_at":true})", "rotated_at must be a string"},
      {R"({"overlap_expires":{}})", "overlap_expires must be a string"},
      {R"({"overlap_days":"thirty"})", "overlap_days must be an integer"},
      {R"({"overlap_days":1.5})", "overlap_days must be an integer"},
      {R"({"previous_retired":1})", "previous_retired must be a string"},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto p = parse_rotation(r.text);
    REQUIRE_FALSE(p.ok());
    CHECK_THAT(p.message(), Catch::Contains(r.error));
  }
}

TEST_CASE("rotation: load and save", "[state]") {
  test::TempDir tmp;
  const std::string path = tmp / "lib/ctrl-exec/rotation.json";

  auto missing = load_rotation(path);
  REQUIRE(missing.ok());
  CHECK_FALSE(*missing);

  RotationState s = rotated();
  s.extra = {{"future", "{\"k\":[true]}"}};
  mode_t old = ::umask(0);
  Status st = save_rotation(path, s); // creates the parent directories
  ::umask(old);
  REQUIRE(st.ok());
  struct stat sb;
  REQUIRE(::stat(path.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 07777) == 0640);
  auto back = load_rotation(path);
  REQUIRE(back.ok());
  REQUIRE(*back);
  CHECK(**back == s);

  // Saving again replaces the file; unknown members survive a load-modify-save.
  RotationState changed = **back;
  changed.previous_serial.reset();
  changed.previous_retired = "2027-01-01T00:00:00Z";
  REQUIRE(save_rotation(path, changed).ok());
  CHECK(test::slurp(path) ==
        R"({"current_serial":"7f3a9c0001","rotated_at":"2026-11-25T04:17:27Z",)"
        R"("overlap_expires":"2026-12-25T04:17:27Z","overlap_days":30,)"
        R"("previous_retired":"2027-01-01T00:00:00Z","future":{"k":[true]}})"
        "\n");

  // A corrupt file is an error (the caller logs rotation-state-corrupt), not "absent".
  REQUIRE(write_file_atomic(path, "{\"current_serial\":").ok());
  auto corrupt = load_rotation(path);
  CHECK_FALSE(corrupt.ok());
  CHECK_THAT(corrupt.message(), Catch::Contains("invalid JSON"));

  // So is a path that cannot be read.
  REQUIRE(make_dirs(tmp / "dir.json").ok());
  CHECK_FALSE(load_rotation(tmp / "dir.json").ok());
  // And a parent that is a file cannot be saved into.
  CHECK_FALSE(save_rotation(path + "/x.json", s).ok());
}
