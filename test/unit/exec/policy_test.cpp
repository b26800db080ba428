// Tests for src/exec/policy.cpp, caps.cpp and confine.cpp (tag [exec]): the executor's own
// decision for a script name, the `resolve` line, the protected directories, capability
// names, run_as resolution and the trampoline's arguments. What needs root and a kernel (the
// confinement itself) is tested end to end in test/e2e/exec/.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "exec/caps.hpp"
#include "exec/confine.hpp"
#include "exec/policy.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::exec;

namespace {

struct Files {
  test::TempDir dir;
  std::string agent_conf = dir / "agent.conf";
  std::string scripts_conf = dir / "scripts.conf";
  std::string scripts = dir / "scripts";

  Files() {
    REQUIRE(make_dirs(scripts).ok());
    for (const char* s : {"a.sh", "b.sh"})
      REQUIRE(write_file_atomic(scripts + "/" + s, "#!/bin/sh\n", {.mode = 0755}).ok());
  }
  void write(const std::string& agent_extra, const std::string& allowlist) {
    REQUIRE(
        write_file_atomic(agent_conf, "port = 7443\ncert = /c\nkey = /k\nca = /ca\n" + agent_extra)
            .ok());
    REQUIRE(write_file_atomic(scripts_conf, allowlist).ok());
  }
  std::string line(const std::string& name) {
    auto p = load_policy(agent_conf, scripts_conf);
    REQUIRE(p.ok());
    return decision_line(decide(**p, name));
  }
};

} // namespace

TEST_CASE("the executor decides from its own reading of the two files", "[exec]") {
  Files f;
  const std::string a = f.scripts + "/a.sh";
  f.write("script_dirs = " + f.scripts +
              "\n[profile default]\nrun_as = nobody\n"
              "[profile web]\nrun_as = 33\ncaps = CAP_CHOWN, CAP_NET_BIND_SERVICE\n"
              "writable = /var/www:/tmp/x\nno_new_privileges = no\n"
              "[profile bare]\n",
          "a = " + a + "\nw = " + a + " profile=web\nbare = " + a + " profile=bare\nghost = " + a +
              " profile=nope\nout = /usr/bin/true\n");
  struct Row {
    const char* name;
    std::string line;
  };
  const Row rows[] = {
      {"a", "OK path=" + a + "|profile=default|run_as=nobody|nnp=1|caps=|writable="},
      {"w", "OK path=" + a +
                "|profile=web|run_as=33|nnp=0|caps=CAP_CHOWN,CAP_NET_BIND_SERVICE|"
                "writable=/var/www:/tmp/x"},
      {"bare", "OK path=" + a + "|profile=bare|run_as=|nnp=1|caps=|writable="},
      {"ghost", "DENY undefined-profile"},
      {"out", "DENY not-in-script-dirs"},
      {"missing", "DENY not-allowlisted"},
      {"", "DENY not-allowlisted"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    CHECK(f.line(r.name) == r.line);
  }
}

TEST_CASE("no implicit default profile, and bad files are errors naming the file", "[exec]") {
  Files f;
  f.write("", "a = " + f.scripts + "/a.sh\n");
  CHECK(f.line("a") == "DENY undefined-profile");

  f.write("[profile default]\nrun_as = bad name\n", "");
  auto p = load_policy(f.agent_conf, f.scripts_conf);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::config);

  auto missing = load_policy(f.dir / "none.conf", f.scripts_conf);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.message(), Catch::Contains("none.conf"));

  f.write("[profile default]\n", "");
  auto no_list = load_policy(f.agent_conf, f.dir / "none-scripts.conf");
  REQUIRE_FALSE(no_list.ok());
  CHECK_THAT(no_list.message(), Catch::Contains("none-scripts.conf"));
}

TEST_CASE("a file's stamp changes when it is rewritten", "[exec]") {
  Files f;
  f.write("[profile default]\n", "a = /x\n");
  FileStamp before = stamp_of(f.scripts_conf);
  CHECK(before.size > 0);
  f.write("[profile default]\n", "a = /x\nb = /y\n");
  CHECK_FALSE(stamp_of(f.scripts_conf) == before);
  CHECK(stamp_of(f.dir / "absent").size == -1);
}

TEST_CASE("protected directories: those that exist, each once, never /", "[exec]") {
  Files f;
  std::string runs = f.dir / "runs";
  REQUIRE(make_dirs(runs).ok());
  f.write("async_runs_dir = " + runs + "\ntrusted_dispatchers_path = " + f.dir.path() +
              "/map\n[profile default]\n",
          "");
  auto p = load_policy(f.agent_conf, f.scripts_conf);
  REQUIRE(p.ok());
  auto dirs = protected_dirs(**p);
  char real[PATH_MAX];
  REQUIRE(::realpath(f.dir.path().c_str(), real));
  // agent.conf, scripts.conf and the map share the temp dir; the runs dir is another.
  CHECK(std::count(dirs.begin(), dirs.end(), std::string(real)) == 1);
  CHECK(std::count(dirs.begin(), dirs.end(), std::string(real) + "/runs") == 1);
  for (const auto& d : dirs) {
    CHECK(d != "/");
    CHECK(is_directory(d));
  }
}

TEST_CASE("capability names follow linux/capability.h", "[exec]") {
  CHECK(capability_number("CAP_CHOWN") == 0);
  CHECK(capability_number("CAP_NET_BIND_SERVICE") == 10);
  CHECK(capability_number("CAP_SYS_ADMIN") == 21);
  CHECK(capability_number("CAP_CHECKPOINT_RESTORE") == 40);
  CHECK_FALSE(capability_number("CAP_NOPE"));
  CHECK_FALSE(capability_number("cap_chown"));
  for (int n = 0; n <= 40; ++n)
    CHECK(capability_number(capability_name(n)) == n);
  CHECK(capability_name(41).empty());
  CHECK(kernel_last_capability() >= 36); // every kernel this runs on has CAP_BLOCK_SUSPEND
}

TEST_CASE("run_as: names through /etc/passwd, numbers as uid = gid", "[exec]") {
  auto root = resolve_run_as("root");
  REQUIRE(root.ok());
  CHECK(root->uid == 0);
  CHECK(root->gid == 0);
  auto nobody = resolve_run_as("nobody");
  REQUIRE(nobody.ok());
  CHECK(nobody->uid == 65534);
  auto num = resolve_run_as("4242");
  REQUIRE(num.ok());
  CHECK(num->uid == 4242);
  CHECK(num->gid == 4242);
  CHECK(num->groups == std::vector<gid_t>{4242});
  struct Bad {
    const char* run_as;
    const char* message;
  };
  const Bad bad[] = {
      {"no-such-user-here", "unknown run_as user 'no-such-user-here'"},
      {"4294967295", "run_as uid '4294967295' is out of range"},
      {"99999999999", "run_as uid '99999999999' is out of range"},
  };
  for (const auto& b : bad) {
    auto r = resolve_run_as(b.run_as);
    REQUIRE_FALSE(r.ok());
    CHECK(r.message() == b.message);
  }
}

TEST_CASE("the trampoline's arguments say everything, in order", "[exec]") {
  Confinement c;
  c.run_as = "nobody";
  c.caps = {"CAP_CHOWN"};
  c.writable = {"/w"};
  c.protected_dirs = {"/etc/ctrl-exec-agent"};
  c.no_new_privileges = false;
  CHECK(confine_args(c, "/s/x.sh", {"a", "--", ""}) ==
        std::vector<std::string>{"--run-as=nobody", "--cap=CAP_CHOWN", "--writable=/w",
                                 "--protect=/etc/ctrl-exec-agent", "--nnp=0", "--", "/s/x.sh", "a",
                                 "--", ""});
  CHECK(confine_args(Confinement{}, "/s", {}) == std::vector<std::string>{"--nnp=1", "--", "/s"});
}

TEST_CASE("the trampoline refuses incomplete arguments before changing anything", "[exec]") {
  struct Row {
    std::vector<std::string> args;
  };
  const Row rows[] = {
      {{"--", "/bin/true"}},                       // no --nnp: nothing may be left unsaid
      {{"--nnp=1"}},                               // no script
      {{"--nnp=1", "--"}},                         // no script after --
      {{"--nnp=2", "--", "/bin/true"}},            // not a value
      {{"--bogus", "--nnp=1", "--", "/bin/true"}}, // unknown
      {{"--cap=CAP_NOPE", "--nnp=1", "--", "/bin/true"}},
      {{"--run-as=no-such-user-here", "--nnp=1", "--", "/bin/true"}},
  };
  for (const auto& r : rows) {
    std::vector<std::string> argv{"ctrl-exec-exec", kConfineMode};
    argv.insert(argv.end(), r.args.begin(), r.args.end());
    std::vector<char*> raw;
    for (auto& a : argv)
      raw.push_back(a.data());
    raw.push_back(nullptr);
    INFO(argv[2]);
    CHECK(run_confined(static_cast<int>(argv.size()), raw.data()) == 126);
  }
}
