// Tests for src/conf/ini.cpp: the sectioned agent.conf grammar and its error texts.
#include <catch2/catch.hpp>

#include "conf/ini.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

TEST_CASE("sectioned parser accepts the grammar", "[conf]") {
  struct Row {
    std::string text;
    KeyValues top, tags;
    std::map<std::string, KeyValues, std::less<>> profiles;
  };
  const Row rows[] = {
      {"", {}, {}, {}},
      {"port = 7443\n  cert = /c\n\t# comment\n   \n", {{"port", "7443"}, {"cert", "/c"}}, {}, {}},
      {"ca = /ca.crt # inline\n", {{"ca", "/ca.crt # inline"}}, {}, {}},
      {"a-b = 1\nx_y-z = 2\n", {{"a-b", "1"}, {"x_y-z", "2"}}, {}, {}},
      {"k = 1\nk = 2\n", {{"k", "2"}}, {}, {}},
      {"k = \n", {{"k", " "}}, {}, {}},
      {"[tags]\nenv = prod\nrole = db primary\n",
       {},
       {{"env", "prod"}, {"role", "db primary"}},
       {}},
      {"[ TAGS ]\nenv=x\n", {}, {{"env", "x"}}, {}},
      {"[Tags extra]\nenv=x\n", {}, {{"env", "x"}}, {}},
      {"[profile default]\n", {}, {}, {{"default", {}}}},
      {"[profile web.v2-x_y]\nrun_as = www\n", {}, {}, {{"web.v2-x_y", {{"run_as", "www"}}}}},
      {"  [  Profile   Web  ]  \r\ncaps = CAP_NET\r\n", {}, {}, {{"Web", {{"caps", "CAP_NET"}}}}},
      {"[profile a]\nx=1\n[profile a]\ny=2\nx=3\n", {}, {}, {{"a", {{"x", "3"}, {"y", "2"}}}}},
      {"[agent]\nport = 1\n[other thing]\nk = v\n", {}, {}, {}}, // other sections ignored
      {"port = 1\n[tags]\nport = 2\n", {{"port", "1"}}, {{"port", "2"}}, {}},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto conf = parse_sectioned(r.text, "/a.conf");
    REQUIRE(conf.ok());
    CHECK(conf->top == r.top);
    CHECK(conf->tags == r.tags);
    CHECK(conf->profiles == r.profiles);
  }
}

TEST_CASE("sectioned parser errors name the file and line", "[conf]") {
  struct Row {
    std::string text;
    std::string err;
  };
  const Row rows[] = {
      {"port = 7443\njust words\n", "Malformed config line in '/a.conf' at line 2: just words"},
      {"key =\n", "Malformed config line in '/a.conf' at line 1: key ="}, // QUIRK: fatal
      {"-k = v\n", "Malformed config line in '/a.conf' at line 1: -k = v"},
      {"= v\n", "Malformed config line in '/a.conf' at line 1: = v"},
      {"[profile web x]\n", "Malformed config line in '/a.conf' at line 1: [profile web x]"},
      {"[tags\n", "Malformed config line in '/a.conf' at line 1: [tags"},
      {"[]\n", "Malformed config line in '/a.conf' at line 1: []"},
      {"[a.b]\n", "Malformed config line in '/a.conf' at line 1: [a.b]"},
      {"[tags] # c\n", "Malformed config line in '/a.conf' at line 1: [tags] # c"},
      {"\n\n[profile]\n", "Profile section without a name in '/a.conf' at line 3: [profile]"},
      {"[ PROFILE ]\n", "Profile section without a name in '/a.conf' at line 1: [ PROFILE ]"},
      {"[agent]\nbad line\n", "Malformed config line in '/a.conf' at line 2: bad line"},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto conf = parse_sectioned(r.text, "/a.conf");
    REQUIRE_FALSE(conf.ok());
    CHECK(conf.message() == r.err);
  }
}

TEST_CASE("load_sectioned reads a file", "[conf]") {
  test::TempDir dir;
  std::string path = conf_test::write(dir, "agent.conf", "port = 7443\n[tags]\nenv = test\n");
  auto conf = load_sectioned(path);
  REQUIRE(conf.ok());
  CHECK(conf->top.at("port") == "7443");
  auto missing = load_sectioned(dir / "nope.conf");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message() ==
        "Cannot open config '" + dir / "nope.conf" + "': No such file or directory");
}
