// Tests for src/base/strings.cpp.
#include <catch2/catch.hpp>

#include "base/strings.hpp"

using namespace cx;

TEST_CASE("name rules", "[base]") {
  struct Row {
    const char* s;
    bool script, agent, dispatcher_id;
  };
  const Row rows[] = {
      {"check-disk", true, true, true}, {"a_b", true, true, true},
      {"", false, false, false},        {"bad name", false, false, false},
      {"x\n", false, false, false},     {"web.example.com", false, true, true},
      {"-lead", true, false, false},    {".hidden", false, false, false},
      {"../etc", false, false, false},  {"a/b", false, false, false},
      {"_under", true, false, false},   {"caf\xc3\xa9", false, false, false},
  };
  for (const auto& r : rows) {
    INFO(r.s);
    CHECK(is_script_name(r.s) == r.script);
    CHECK(is_agent_name(r.s) == r.agent);
    CHECK(is_dispatcher_id(r.s) == r.dispatcher_id);
  }
  CHECK(is_dispatcher_id(std::string(64, 'a')));
  CHECK_FALSE(is_dispatcher_id(std::string(65, 'a')));
  // The registry file and its temporary twin must fit a 255-byte file name (issue 11, defect 2).
  CHECK(is_agent_name(std::string(239, 'a')));
  CHECK_FALSE(is_agent_name(std::string(240, 'a')));
  CHECK_FALSE(is_agent_name(std::string(300, 'a')));
}

TEST_CASE("address shapes", "[base]") {
  CHECK(looks_like_ipv4("127.0.0.1"));
  CHECK(looks_like_ipv4("999.1.1.1")); // shape only, as the original checks
  CHECK_FALSE(looks_like_ipv4("1.2.3"));
  CHECK_FALSE(looks_like_ipv4("1.2.3.4.5"));
  CHECK_FALSE(looks_like_ipv4("1.2.3.a"));
  CHECK(looks_like_ipv6("::1"));
  CHECK(looks_like_ipv6("fe80::1"));
  CHECK_FALSE(looks_like_ipv6(":"));
  CHECK_FALSE(looks_like_ipv6("host"));
}

TEST_CASE("split, trim and numbers", "[base]") {
  CHECK(split("a,,b", ',') == std::vector<std::string>{"a", "", "b"});
  CHECK(split_ws("  a \t b\n") == std::vector<std::string>{"a", "b"});
  CHECK(trim("  x y \r\n") == "x y");
  CHECK(parse_uint("0") == 0u);
  CHECK(parse_uint("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(parse_uint("18446744073709551616"));
  CHECK_FALSE(parse_uint("-1"));
  CHECK_FALSE(parse_uint("1 "));
  CHECK(parse_int("-5") == -5);
  CHECK(sanitize_file_component("web-01:7450") == "web-01_7450");
}

TEST_CASE("strprintf formats like printf, at any length", "[base]") {
  CHECK(strprintf("%-6s|%3d|%s", "ab", 7, "") == "ab    |  7|");
  CHECK(strprintf("%s", "") == "");
  std::string wide(5000, 'x');
  CHECK(strprintf("<%s>", wide.c_str()) == "<" + wide + ">");
}

TEST_CASE("hex_encode: two digits a byte, in either case", "[base]") {
  const unsigned char bytes[] = {0x00, 0x0a, 0x7f, 0xff};
  CHECK(hex_encode(bytes, sizeof bytes) == "000a7fff");
  CHECK(hex_encode(bytes, sizeof bytes, true) == "000A7FFF");
  CHECK(hex_encode(bytes, 0) == "");
}

TEST_CASE("UTF-8 replacement policy", "[base]") {
  struct Row {
    std::string in, out;
  };
  const std::string R = "\xEF\xBF\xBD";
  const Row rows[] = {
      {"plain ascii\n", "plain ascii\n"},
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
      {"a\xFF"
       "b",
       "a" + R + "b"},
      {"\xC3", R},     // truncated 2-byte sequence
      {"\xE2\x82", R}, // truncated 3-byte sequence: one U+FFFD
      {"\xE2\x82"
       "x",
       R + "x"},
      {"\xC0\xAF", R + R},                 // overlong: each byte replaced
      {"\xED\xA0\x80", R + R + R},         // surrogate
      {"\xF4\x90\x80\x80", R + R + R + R}, // above U+10FFFF
      {std::string("nul\0byte", 8), std::string("nul\0byte", 8)},
  };
  for (const auto& r : rows) {
    CHECK(sanitize_utf8(r.in) == r.out);
    CHECK(is_valid_utf8(r.out));
  }
}

TEST_CASE("base64", "[base]") {
  struct Row {
    std::string bytes, text;
  };
  const Row rows[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foobar", "Zm9vYmFy"},
      {std::string("\0\xff\xfe", 3), "AP/+"},
      {std::string("\x01\x02\x03\x04", 4), "AQIDBA=="},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    CHECK(base64_encode(r.bytes) == r.text);
    CHECK(base64_decode(r.text) == r.bytes);
  }
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zg==Zg==", "Zm9v!", "Zm 9", "=Zg=", "Zm=v"}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad));
  }
}
