// Tests for src/conf/allowlist.cpp: scripts.conf entries, undefined profiles, script_dirs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include "conf/allowlist.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

TEST_CASE("allowlist entries and annotations", "[conf]") {
  struct Row {
    std::string text;
    Allowlist scripts;
    std::vector<std::string> warnings;
  };
  const Row rows[] = {
      {"", {}, {}},
      {"backup = /opt/s/backup.sh\n", {{"backup", {"/opt/s/backup.sh", "default"}}}, {}},
      {"  # comment\n\ncheck-disk=/opt/s/df\n", {{"check-disk", {"/opt/s/df", "default"}}}, {}},
      {"web = profile=web /opt/s/web\n", {{"web", {"/opt/s/web", "web"}}}, {}},
      {"web = /opt/s/web profile=web\n", {{"web", {"/opt/s/web", "web"}}}, {}},
      {"web = /opt/s/web  timeout=5\tprofile=w2\n", {{"web", {"/opt/s/web", "w2"}}}, {}},
      {"a = /one\na = /two profile=p\n", {{"a", {"/two", "p"}}}, {}}, // last wins
      {"x = profile=web\n", {}, {"Skipping allowlist entry 'x' in /s.conf line 1: no script path"}},
      {"x = /a /b\n",
       {},
       {"Skipping allowlist entry 'x' in /s.conf line 1: more than one script path (/a, /b)"}},
      {"x = rel/path.sh\n",
       {},
       {"Skipping allowlist entry 'x' in /s.conf line 1: script path 'rel/path.sh' is not "
        "absolute"}},
      {"x = /a Profile=web\n",
       {}, // not an annotation: upper case
       {"Skipping allowlist entry 'x' in /s.conf line 1: more than one script path (/a, "
        "Profile=web)"}},
      {"x = /a profile=\n",
       {},
       {"Skipping allowlist entry 'x' in /s.conf line 1: empty profile= annotation"}},
      {"not an entry\nok = /ok\nbad.name = /x\nk =\n",
       {{"ok", {"/ok", "default"}}},
       {"Skipping malformed allowlist line in /s.conf line 1: not an entry",
        "Skipping malformed allowlist line in /s.conf line 3: bad.name = /x",
        "Skipping malformed allowlist line in /s.conf line 4: k ="}},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto load = parse_allowlist(r.text, "/s.conf");
    CHECK(load.scripts == r.scripts);
    CHECK(load.warnings == r.warnings);
  }
}

TEST_CASE("load_allowlist reads a file or names it", "[conf]") {
  test::TempDir dir;
  std::string path = conf_test::write(dir, "scripts.conf", "a = /opt/a\n");
  auto load = load_allowlist(path);
  REQUIRE(load.ok());
  CHECK(load->scripts.size() == 1);
  auto missing = load_allowlist(dir / "none");
  CHECK(missing.message() ==
        "Cannot open allowlist '" + dir / "none" + "': No such file or directory");
}

TEST_CASE("undefined profiles are listed by script name", "[conf]") {
  Allowlist scripts = {{"zeta", {"/z", "web"}},
                       {"alpha", {"/a", "default"}},
                       {"mid", {"/m", "db"}},
                       {"ok", {"/o", "ops"}}};
  std::map<std::string, Profile> profiles = {{"ops", {}}};
  CHECK(undefined_profiles(scripts, profiles) ==
        std::vector<std::pair<std::string, std::string>>{
            {"alpha", "default"}, {"mid", "db"}, {"zeta", "web"}});
  CHECK(undefined_profiles_message(scripts, profiles) ==
        "script(s) reference an undefined profile: alpha -> default, mid -> db, zeta -> web");
  profiles = {{"ops", {}}, {"default", {}}, {"db", {}}, {"web", {}}};
  CHECK(undefined_profiles(scripts, profiles).empty());
  CHECK(undefined_profiles_message(scripts, profiles).empty());
}

TEST_CASE("script_dirs containment", "[conf]") {
  test::TempDir dir;
  std::string scripts = dir / "scripts";
  std::string inside = conf_test::write(dir, "scripts/ok.sh", "#!/bin/sh\n", 0755);
  conf_test::write(dir, "scripts/sub/deep.sh", "#!/bin/sh\n", 0755);
  std::string outside = conf_test::write(dir, "elsewhere/evil.sh", "#!/bin/sh\n", 0755);
  REQUIRE(::symlink(outside.c_str(), (scripts + "/link.sh").c_str()) == 0);
  REQUIRE(::symlink((dir / "elsewhere").c_str(), (scripts + "/linkdir").c_str()) == 0);
  // A second name for the scripts dir: paths through it resolve inside.
  REQUIRE(::symlink(scripts.c_str(), (dir / "alias").c_str()) == 0);
  conf_test::write(dir, "scripts-evil/x.sh", "#!/bin/sh\n", 0755);

  struct Row {
    std::string path;
    std::vector<std::string> dirs;
    bool inside;
  };
  const Row rows[] = {
      {inside, {scripts}, true},
      {inside, {scripts + "/"}, true},
      {scripts + "/sub/deep.sh", {scripts}, true},
      {scripts, {scripts}, true},                // the dir itself
      {inside, {"/nonexistent", scripts}, true}, // any of the dirs
      {inside, {dir / "alias"}, true},           // dir given through a symlink
      {dir / "alias/ok.sh", {scripts}, true},    // path given through a symlink
      {inside, {}, true},                        // no dirs: no restriction
      {inside, {"/"}, true},
      {outside, {scripts}, false},
      {scripts + "/link.sh", {scripts}, false},         // symlink escape
      {scripts + "/linkdir/evil.sh", {scripts}, false}, // symlinked dir escape
      {scripts + "/linkdir/missing.sh", {scripts}, false},
      {scripts + "/../elsewhere/evil.sh", {scripts}, false}, // .. escape (exists)
      {scripts + "/../elsewhere/none.sh", {scripts}, false}, // .. escape (missing)
      {scripts + "/missing/../../x", {scripts}, false},
      {dir / "scripts-evil/x.sh", {scripts}, false}, // prefix is not containment
      {scripts + "/not-yet.sh", {scripts}, true},    // missing file, literal under dir
      {"/opt/lit/a.sh", {"/opt/lit"}, true},         // neither exists: literal compare
      {"/opt/lit/../a.sh", {"/opt/lit"}, false},
      {"/opt/literal/a.sh", {"/opt/lit"}, false},
      {"relative.sh", {scripts}, false},
  };
  for (const auto& r : rows) {
    INFO(r.path);
    CHECK(in_script_dirs(r.path, r.dirs) == r.inside);
  }

  Allowlist list = {{"ok", {inside, "default"}}, {"evil", {scripts + "/link.sh", "default"}}};
  auto warnings = drop_outside_script_dirs(list, {scripts});
  CHECK(list.size() == 1);
  CHECK(list.count("ok"));
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "Skipping allowlist entry 'evil': " + scripts +
                           "/link.sh is not inside script_dirs (" + scripts + ")");
}
