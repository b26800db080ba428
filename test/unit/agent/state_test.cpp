// Tests for src/agent/state.cpp (tag [agent]): what serve and SIGHUP load, and how failures
// are reported or survived.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "agent/state.hpp"
#include "base/files.hpp"
#include "log/log.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::agent;

namespace {
struct Files {
  test::TempDir dir;
  Paths paths{dir / "agent.conf", dir / "scripts.conf"};

  Files() {
    log::init("ctrl-exec-agent", log::Sink::capture);
    REQUIRE(make_dirs(dir / "scripts").ok());
    REQUIRE(make_dirs(dir / "elsewhere").ok());
    write_conf("");
    write("scripts.conf",
          "a = " + dir.path() + "/scripts/a.sh\nb = " + dir.path() + "/elsewhere/b.sh\n");
    write("map", "7f3a9c disp-1\n");
    write("revoked", "0x0a11\n");
  }
  ~Files() { log::shutdown(); }
  void write(const std::string& name, const std::string& text) {
    REQUIRE(write_file_atomic(dir / name, text).ok());
  }
  void write_conf(const std::string& extra) {
    write("agent.conf", "port = 7443\ncert = c\nkey = k\nca = a\ntrusted_dispatchers_path = " +
                            dir.path() + "/map\nrevoked_serials = " + dir.path() + "/revoked\n" +
                            extra + "\n[profile default]\n");
  }
};
} // namespace

TEST_CASE("load_state reads everything and filters by script_dirs", "[agent]") {
  Files f;
  f.write_conf("script_dirs = " + f.dir.path() + "/scripts");
  auto st = load_state(f.paths, nullptr);
  REQUIRE(st.ok());
  CHECK((*st)->scripts.size() == 1);
  CHECK((*st)->scripts.count("a") == 1);
  CHECK(*(*st)->trusted.find("7f3a9c") == "disp-1");
  CHECK((*st)->revoked.contains("a11"));
  CHECK(unenforced_profiles_warning(**st).empty());
}

TEST_CASE("load_state failures name the problem", "[agent]") {
  Files f;
  f.write("scripts.conf", "a = /x/a.sh profile=web\n");
  auto st = load_state(f.paths, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "script(s) reference an undefined profile: a -> web");

  f.write_conf("[profile web]\nrun_as = www-data");
  st = load_state(f.paths, nullptr);
  REQUIRE(st.ok());
  CHECK_THAT(unenforced_profiles_warning(**st), Catch::Contains("a -> web"));
  f.write_conf("executor_socket = /run/x.sock\n[profile web]");
  st = load_state(f.paths, nullptr);
  REQUIRE(st.ok());
  CHECK(unenforced_profiles_warning(**st).empty());
  // A profile that asks for nothing but no_new_privileges is not worth a warning.
  f.write_conf("[profile web]\nno_new_privileges = yes");
  st = load_state(f.paths, nullptr);
  REQUIRE(st.ok());
  CHECK(unenforced_profiles_warning(**st).empty());
  f.write_conf("[profile web]\ncaps = CAP_CHOWN");
  st = load_state(f.paths, nullptr);
  REQUIRE(st.ok());
  CHECK_THAT(unenforced_profiles_warning(**st), Catch::Contains("a -> web"));

  f.write("agent.conf", "port = 7443\n");
  st = load_state(f.paths, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "Missing required config key 'cert'");
}

TEST_CASE("a reload keeps the previous map and revoked list when they cannot be read", "[agent]") {
  Files f;
  auto first = load_state(f.paths, nullptr);
  REQUIRE(first.ok());
  // Directories where the files should be: unreadable for anyone, root included.
  REQUIRE(remove_file(f.dir / "map").ok());
  REQUIRE(remove_file(f.dir / "revoked").ok());
  REQUIRE(make_dirs(f.dir / "map").ok());
  REQUIRE(make_dirs(f.dir / "revoked").ok());
  auto again = load_state(f.paths, first->get());
  REQUIRE(again.ok());
  CHECK(*(*again)->trusted.find("7f3a9c") == "disp-1");
  CHECK((*again)->revoked.contains("a11"));
  // At startup the same failures mean: nobody trusted, nothing revoked.
  auto cold = load_state(f.paths, nullptr);
  REQUIRE(cold.ok());
  CHECK((*cold)->trusted.empty());
  CHECK((*cold)->revoked.size() == 0);
}

TEST_CASE("first_missing_tls_file", "[agent]") {
  Files f;
  conf::AgentConfig c;
  c.cert = f.dir / "c";
  c.key = f.dir / "k";
  c.ca = f.dir / "a";
  CHECK(first_missing_tls_file(c) == c.cert);
  f.write("c", "x");
  f.write("k", "x");
  CHECK(first_missing_tls_file(c) == c.ca);
  f.write("a", "x");
  CHECK(first_missing_tls_file(c).empty());
}
