// Tests for src/json/json.cpp: parsing limits, typed reads and Perl truthiness.
#include <catch2/catch.hpp>

#include <string>

#include "json/json.hpp"
#include "json/writer.hpp"

using namespace cx;

namespace {
json::Document must_parse(const std::string& text) {
  auto doc = json::parse(text);
  INFO(text << " -> " << doc.message());
  REQUIRE(doc.ok());
  return std::move(doc).value();
}
} // namespace

TEST_CASE("parse accepts one JSON value and rejects the rest", "[json]") {
  struct Row {
    std::string in;
    std::string compact; // expected to_string() on success
    std::string err;     // expected error text ("" = success)
  };
  const Row rows[] = {
      {"{}", "{}", ""},
      {"  [1, 2 ,3]\n", "[1,2,3]", ""},
      {"\"caf\xC3\xA9\"", "\"caf\xC3\xA9\"", ""},
      {"{\"a\":1,\"b\":2,\"a\":3}", "{\"b\":2,\"a\":3}", ""}, // duplicate keys: last wins
      {"{\"x\":{\"k\":1,\"k\":2}}", "{\"x\":{\"k\":2}}", ""},
      {"", "", "invalid JSON: The document is empty. at offset 0"},
      {"{\"a\":1}x", "",
       "invalid JSON: The document root must not be followed by other values. at offset 7"},
      {"1 2", "",
       "invalid JSON: The document root must not be followed by other values. at offset 2"},
      {"{\"a\":}", "", "invalid JSON: Invalid value. at offset 5"},
      {"[1,]", "", "invalid JSON: Invalid value. at offset 3"},
      {"{'a':1}", "", "invalid JSON: Missing a name for object member. at offset 1"},
      {"\"\xFF\"", "", "invalid JSON: Invalid encoding in string. at offset 1"},
      {"NaN", "", "invalid JSON: Invalid value. at offset 0"},
      {std::string("{}\0{", 4), "", "invalid JSON: NUL byte at offset 2"},
      // UTF-16 escapes: a pair decodes to one code point; a lone surrogate would become
      // invalid UTF-8, so it is refused wherever it stands (issue 11, defect 3).
      {"\"\\uD83D\\uDE00\"", "\"\xF0\x9F\x98\x80\"", ""},
      {"\"\\uDDDD\"", "", "invalid JSON: lone UTF-16 surrogate in a string at offset 8"},
      {"{\"hostname\":\"web-01\",\"csr\":\"\\uDDDD\"}", "",
       "invalid JSON: lone UTF-16 surrogate in a string at offset 35"},
      {"{\"\\uDC00\":1}", "", "invalid JSON: lone UTF-16 surrogate in a string at offset 9"},
      {"[\"ok\",\"a\\uDFFFb\"]", "",
       "invalid JSON: lone UTF-16 surrogate in a string at offset 16"},
      {"\"\\uD800\"", "", "invalid JSON: The surrogate pair in string is invalid. at offset 1"},
      {"\"\\uD800\\u0041\"", "",
       "invalid JSON: The surrogate pair in string is invalid. at offset 1"},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    auto doc = json::parse(r.in);
    if (r.err.empty()) {
      REQUIRE(doc.ok());
      CHECK(json::to_string(*doc) == r.compact);
    } else {
      REQUIRE_FALSE(doc.ok());
      CHECK(doc.message() == r.err);
    }
  }
}

TEST_CASE("parse bounds nesting at JSON::XS's max_depth", "[json]") {
  std::string ok = std::string(512, '[') + std::string(512, ']');
  CHECK(json::parse(ok).ok());
  std::string deep = std::string(513, '[') + std::string(513, ']');
  auto doc = json::parse(deep);
  REQUIRE_FALSE(doc.ok());
  CHECK(doc.message() == "invalid JSON: nesting deeper than 512 at offset 512");
  // Far deeper input must fail the same way, not exhaust the stack.
  std::string huge(1 << 20, '[');
  CHECK_FALSE(json::parse(huge).ok());
}

TEST_CASE("typed reads name the field that is wrong", "[json]") {
  auto doc = must_parse(R"({"script":"backup","n":5,"f":5.0,"frac":1.5,"big":18446744073709551615,
    "b":true,"nul":null,"args":["a","b"],"mixed":["a",1],"obj":{"k":"v"},"empty":""})");

  struct Row {
    const char* field;
    std::string string_result; // get_string: value or error text
    std::string int_result;    // get_int64
    std::string bool_result;   // get_bool
  };
  const Row rows[] = {
      {"script", "backup", "field 'script' must be an integer", "field 'script' must be a boolean"},
      {"n", "field 'n' must be a string", "5", "field 'n' must be a boolean"},
      {"f", "field 'f' must be a string", "5", "field 'f' must be a boolean"},
      {"frac", "field 'frac' must be a string", "field 'frac' must be an integer",
       "field 'frac' must be a boolean"},
      {"big", "field 'big' must be a string", "field 'big' must be an integer",
       "field 'big' must be a boolean"},
      {"b", "field 'b' must be a string", "field 'b' must be an integer", "true"},
      {"nul", "missing field 'nul'", "missing field 'nul'", "missing field 'nul'"},
      {"absent", "missing field 'absent'", "missing field 'absent'", "missing field 'absent'"},
      {"empty", "", "field 'empty' must be an integer", "field 'empty' must be a boolean"},
  };
  for (const auto& r : rows) {
    INFO(r.field);
    auto s = json::get_string(*&doc, r.field);
    CHECK((s.ok() ? *s : s.message()) == r.string_result);
    auto i = json::get_int64(doc, r.field);
    CHECK((i.ok() ? std::to_string(*i) : i.message()) == r.int_result);
    auto b = json::get_bool(doc, r.field);
    CHECK((b.ok() ? std::string(*b ? "true" : "false") : b.message()) == r.bool_result);
  }

  // The _or and optional forms: absent or null gives the fallback, a wrong type still fails.
  CHECK(*json::get_string_or(doc, "absent", "dflt") == "dflt");
  CHECK(*json::get_string_or(doc, "nul", "dflt") == "dflt");
  CHECK(*json::get_string_or(doc, "script", "dflt") == "backup");
  CHECK(json::get_string_or(doc, "n", "dflt").message() == "field 'n' must be a string");
  CHECK_FALSE(json::get_optional_string(doc, "absent")->has_value());
  CHECK(**json::get_optional_string(doc, "script") == "backup");
  CHECK(*json::get_int64_or(doc, "absent", 7) == 7);
  CHECK(*json::get_int64_or(doc, "n", 7) == 5);
  CHECK(*json::get_bool_or(doc, "absent", true) == true);
  CHECK(json::get_bool_or(doc, "n", true).message() == "field 'n' must be a boolean");

  CHECK(*json::get_string_array(doc, "args") == std::vector<std::string>{"a", "b"});
  CHECK(json::get_string_array(doc, "mixed").message() ==
        "field 'mixed' must be an array of strings");
  CHECK(json::get_string_array(doc, "script").message() ==
        "field 'script' must be an array of strings");
  CHECK(json::get_string_array(doc, "absent").message() == "missing field 'absent'");
  CHECK(json::get_string_array_or(doc, "absent")->empty());

  auto obj = json::get_object(doc, "obj");
  REQUIRE(obj.ok());
  CHECK(*json::get_string(**obj, "k") == "v");
  CHECK(json::get_object(doc, "args").message() == "field 'args' must be an object");
  CHECK(*json::get_optional_object(doc, "absent") == nullptr);
  CHECK(json::get_optional_object(doc, "n").message() == "field 'n' must be an object");

  auto arr = must_parse("[1]");
  CHECK(json::get_string(arr, "x").message() == "expected a JSON object");
  CHECK(json::find(arr, "x") == nullptr);
  CHECK(json::find(doc, "script") != nullptr);
}

TEST_CASE("Perl truthiness", "[json]") {
  struct Row {
    const char* in;
    bool truthy;
  };
  const Row rows[] = {
      {"null", false},
      {"false", false},
      {"0", false},
      {"0.0", false},
      {"-0", false},
      {"\"\"", false},
      {"\"0\"", false},
      {"true", true},
      {"1", true},
      {"-1", true},
      {"0.5", true},
      {"\"0.0\"", true},
      {"\"00\"", true},
      {"\" \"", true},
      {"\"yes\"", true},
      {"\"false\"", true},
      {"[]", true},
      {"{}", true},
      {"18446744073709551615", true},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    CHECK(json::is_truthy(must_parse(r.in)) == r.truthy);
  }
}

TEST_CASE("scalars stringify as Perl prints them", "[json]") {
  struct Row {
    const char* in;
    const char* out; // nullptr = not a scalar
  };
  const Row rows[] = {
      {"\"v1.2\"", "v1.2"}, {"2", "2"},        {"-7", "-7"},
      {"1.0", "1"},         {"1.5", "1.5"},    {"0.1", "0.1"},
      {"1e20", "1e+20"},    {"-0.0", "0"},     {"18446744073709551615", "18446744073709551615"},
      {"null", nullptr},    {"true", nullptr}, {"[1]", nullptr},
      {"{}", nullptr},
  };
  for (const auto& r : rows) {
    INFO(r.in);
    auto s = json::scalar_string(must_parse(r.in));
    if (r.out) {
      REQUIRE(s);
      CHECK(*s == r.out);
    } else {
      CHECK_FALSE(s);
    }
  }
}
