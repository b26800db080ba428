// Tests for src/state/scripts_cache.cpp (tag [state]): the completion's cache of script names.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "state/scripts_cache.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

TEST_CASE("scripts cache text: one sorted line per agent, nothing that needs quoting", "[state]") {
  ScriptsByAgent s{{"web2", {"deploy", "noop"}},
                   {"web1", {}},
                   {"bad name", {"x"}},
                   {"db1", {"ok", "not ok", "../x"}}};
  CHECK(scripts_cache_text(s) == "db1 ok\nweb1\nweb2 deploy noop\n");
  auto back = parse_scripts_cache("db1 ok\nweb1\n\n$$ junk\nweb2 deploy noop\n");
  CHECK(back == ScriptsByAgent{{"db1", {"ok"}}, {"web1", {}}, {"web2", {"deploy", "noop"}}});
}

TEST_CASE("update_scripts_cache replaces the agents it names and keeps the rest", "[state]") {
  test::TempDir dir;
  std::string path = dir / "scripts.cache";
  REQUIRE(update_scripts_cache(path, {{"a1", {"noop"}}, {"a2", {"x", "y"}}}).ok());
  REQUIRE(update_scripts_cache(path, {{"a2", {}}, {"a3", {"z"}}}).ok());
  auto text = read_file(path);
  REQUIRE(text.ok());
  CHECK(*text == "a1 noop\na2\na3 z\n");
  // Nothing new: the file is not written again (a rename would give it another inode).
  struct stat before, after;
  REQUIRE(::stat(path.c_str(), &before) == 0);
  REQUIRE(update_scripts_cache(path, {{"a1", {"noop"}}}).ok());
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(before.st_ino == after.st_ino);
}
