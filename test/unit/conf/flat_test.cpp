// Tests for src/conf/flat.cpp and src/conf/common.cpp: the original's flat parser, exactly.
#include <catch2/catch.hpp>

#include "conf/flat.hpp"
#include "conf_test_util.hpp"

using namespace cx;
using namespace cx::conf;

TEST_CASE("flat parser line rules", "[conf]") {
  struct Row {
    std::string text;
    FlatConfig expected;
  };
  const Row rows[] = {
      {"", {}},
      {"cert = /etc/ctrl-exec/dispatcher.crt\n", {{"cert", "/etc/ctrl-exec/dispatcher.crt"}}},
      {"key=/k", {{"key", "/k"}}},                               // no final newline
      {"a = 1\na = 2\n", {{"a", "2"}}},                          // later duplicate wins
      {"  cert = /indented\n\tkey = /tab\n", {}},                // QUIRK: leading space ignored
      {"# cert = /c\n#x\n", {}},                                 // whole-line comments
      {"ca = /ca.crt # the CA\n", {{"ca", "/ca.crt # the CA"}}}, // inline # is value
      {"timeout =\n", {}},                                       // value must be >= 1 char
      {"timeout = \n", {{"timeout", " "}}},                      // ... but one space will do
      {"timeout =\t \n", {{"timeout", " "}}},                    // the last char of the tail
      {"a =  spaced  value  \r\n", {{"a", "spaced  value"}}},    // trimmed, CRLF tolerated
      {"a=b=c\n", {{"a", "b=c"}}},
      {"unknown_key = kept\n", {{"unknown_key", "kept"}}},
      {"with-dash = x\n", {}},              // \w+ has no '-'
      {"[section]\nk = v\n", {{"k", "v"}}}, // no sections: header ignored
      {"just words\n= v\nk v\n", {}},       // other lines ignored
      {"k\t=\tv\n", {{"k", "v"}}},
      {"K = Upper\n", {{"K", "Upper"}}},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    CHECK(parse_flat(r.text) == r.expected);
  }
}

TEST_CASE("required cert/key/ca", "[conf]") {
  struct Row {
    std::string text;
    std::string err; // "" = ok
  };
  const Row rows[] = {
      {"cert=/c\nkey=/k\nca=/a\n", ""},
      {"key=/k\nca=/a\n", "Missing 'cert' in /x.conf"},
      {"cert=/c\nca=/a\n", "Missing 'key' in /x.conf"},
      {"cert=/c\nkey=/k\n", "Missing 'ca' in /x.conf"},
      {"cert=0\nkey=/k\nca=/a\n", "Missing 'cert' in /x.conf"}, // Perl truth: "0" is false
      {"cert=0.0\nkey=/k\nca=/a\n", ""},                        // "0.0" is true
      {"cert= \nkey=/k\nca=/a\n", ""},                          // " " is true
      {"", "Missing 'cert' in /x.conf"},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    Status st = check_required_tls_keys(parse_flat(r.text), "/x.conf");
    CHECK(st.message() == r.err);
  }
}

TEST_CASE("flat loads: strict, lenient and unopenable", "[conf]") {
  test::TempDir dir;
  std::string path = conf_test::write(dir, "ctrl-exec.conf", "cert = /c\nkey = /k\n");
  auto lenient = load_flat(path);
  REQUIRE(lenient.ok());
  CHECK(lenient->size() == 2);
  auto strict = load_flat_required(path);
  REQUIRE_FALSE(strict.ok());
  CHECK(strict.message() == "Missing 'ca' in " + path);

  auto missing = load_flat(dir / "none.conf");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message() ==
        "Cannot open config '" + dir / "none.conf" + "': No such file or directory");
  auto is_dir = load_flat(dir.path());
  REQUIRE_FALSE(is_dir.ok());
  CHECK(is_dir.message() == "Cannot open config '" + dir.path() + "': Is a directory");
}

TEST_CASE("shared value helpers", "[conf]") {
  CHECK(split_lines("a\nb") == std::vector<std::string_view>{"a", "b"});
  CHECK(split_lines("a\n\n") == std::vector<std::string_view>{"a", ""});
  CHECK(split_lines("").empty());
  CHECK_FALSE(capture_value(""));
  CHECK(*capture_value(" v ") == "v");
  CHECK(*capture_value("  \t") == "\t");

  struct RateRow {
    const char* in;
    std::optional<RateLimit> out;
  };
  const RateRow rates[] = {
      {"10/60/300", RateLimit{10, 60, 300}},
      {"0/0/0", RateLimit{0, 0, 0}},
      {"10/60", std::nullopt},
      {"10/60/300/1", std::nullopt},
      {"a/b/c", std::nullopt},
      {"10 /60/300", std::nullopt},
      {"-1/60/300", std::nullopt},
      {"", std::nullopt},
      {"99999999999999999999/1/1", std::nullopt},
  };
  for (const auto& r : rates) {
    INFO(r.in);
    CHECK(parse_rate_limit(r.in) == r.out);
  }
  CHECK(format_rate_limit({3, 600, 3600}) == "3/600/3600");

  CHECK(parse_config_int("42") == 42);
  CHECK(parse_config_int("+42") == 42);
  CHECK(parse_config_int("-3") == -3);
  CHECK_FALSE(parse_config_int("4.5"));
  CHECK_FALSE(parse_config_int("30s"));
  CHECK_FALSE(parse_config_int(""));
}
