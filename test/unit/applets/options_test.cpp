// Tests for applets/options.cpp (tag [applets]): the option rules every applet shares, as rows
// of command lines against a small CLI11 app shaped like the applets' own.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "applets/options.hpp"

using cx::applets::CommandLine;
using cx::applets::OptionError;
using cx::applets::parse_command_line;

namespace {

struct Parsed {
  std::string config = "default";
  bool json = false, hidden = false;
  std::optional<int> timeout;
  std::string token, tags;
  std::vector<std::string> words;
  CommandLine line;
  std::optional<OptionError> error;
};

Parsed parse(const std::vector<std::string>& args, bool take_tail = false) {
  Parsed p;
  CLI::App app("test", "test");
  app.set_help_flag();
  app.add_option("--config", p.config);
  app.add_flag("--json", p.json);
  app.add_option("--timeout", p.timeout);
  app.add_option("--token", p.token);
  app.add_option("--tags", p.tags);
  app.add_flag("--hidden-child", p.hidden)->group("");
  app.add_option("words", p.words);
  p.error = parse_command_line(app, args, take_tail, &p.line);
  return p;
}

using Words = std::vector<std::string>;

} // namespace

TEST_CASE("options: prefixes, one or two dashes, =value, anywhere among the words", "[applets]") {
  struct Row {
    Words args;
    Words words;
    std::optional<int> timeout;
    bool json;
    std::string config;
  };
  const Row rows[] = {
      {{"--timeout", "5", "run"}, {"run"}, 5, false, "default"},
      {{"--time=5", "run"}, {"run"}, 5, false, "default"},
      {{"run", "-ti", "5"}, {"run"}, 5, false, "default"},
      {{"run", "a", "-json", "b"}, {"run", "a", "b"}, std::nullopt, true, "default"},
      {{"--j", "--conf=x=y", "run"}, {"run"}, std::nullopt, true, "x=y"},
      {{"--config", "--json", "run"}, {"run"}, std::nullopt, false, "--json"}, // a value
      {{"--timeout", "-5"}, {}, -5, false, "default"},
      {{"-", "run"}, {"-", "run"}, std::nullopt, false, "default"},
  };
  for (const auto& r : rows) {
    INFO(Catch::Detail::stringify(r.args));
    Parsed p = parse(r.args);
    REQUIRE_FALSE(p.error);
    CHECK(p.words == r.words);
    CHECK(p.timeout == r.timeout);
    CHECK(p.json == r.json);
    CHECK(p.config == r.config);
  }
}

TEST_CASE("options: unknown, ambiguous and hidden names; values CLI11 refuses", "[applets]") {
  struct Row {
    Words args;
    OptionError::Kind kind;
    std::string message;
  };
  const Row rows[] = {
      {{"--bogus"}, OptionError::Kind::name, "unknown option '--bogus'"},
      {{"run", "-x"}, OptionError::Kind::name, "unknown option '-x'"},
      {{"--t", "x"},
       OptionError::Kind::name,
       "option '--t' is ambiguous (--tags, --timeout, --token)"},
      {{"--t=x"},
       OptionError::Kind::name,
       "option '--t=x' is ambiguous (--tags, --timeout, --token)"},
      {{"--hidden"}, OptionError::Kind::name, "unknown option '--hidden'"}, // spelled out only
      {{"--", "run"}, OptionError::Kind::name, "unknown option '--'"},      // no tail taken
      {{"--=x"}, OptionError::Kind::name, "unknown option '--=x'"},
      {{"--timeout=abc"}, OptionError::Kind::value, "Could not convert: --timeout = abc"},
      {{"--time", "abc"}, OptionError::Kind::value, "Could not convert: --timeout = abc"},
      {{"run", "--timeout"}, OptionError::Kind::value, "--timeout: 1 required INT missing"},
  };
  for (const auto& r : rows) {
    INFO(Catch::Detail::stringify(r.args));
    Parsed p = parse(r.args);
    REQUIRE(p.error);
    CHECK(p.error->kind == r.kind);
    CHECK(p.error->message == r.message);
  }
  Parsed spelled = parse({"--hidden-child", "run"});
  CHECK_FALSE(spelled.error);
  CHECK(spelled.hidden);
}

TEST_CASE("options: a bare -- ends the options where the applet takes a tail", "[applets]") {
  Parsed p = parse({"run", "h", "--json", "--", "--json", "-x", "--"}, true);
  REQUIRE_FALSE(p.error);
  CHECK(p.words == Words{"run", "h"});
  CHECK(p.json);
  CHECK(p.line.has_dashdash);
  CHECK(p.line.tail == Words{"--json", "-x", "--"});
  Parsed none = parse({"run", "h"}, true);
  CHECK_FALSE(none.line.has_dashdash);
  CHECK(none.line.tail.empty());
}
