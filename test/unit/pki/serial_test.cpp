// Tests for src/pki/serial.cpp: canon() rows, our serials, ca.serial, and the two serial texts.
#include <catch2/catch.hpp>

#include <set>

#include "base/serial_hex.hpp"
#include "pki/serial.hpp"
#include "pki_test_support.hpp"
#include "tls/tls.hpp"

using namespace cx;
using namespace cx::pki;

TEST_CASE("canon reproduces every test vector of agent-and-wire 4.2.1", "[pki]") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      {"deadbeef", "deadbeef"},
      {"DEADBEEF", "deadbeef"},
      {"00aabbccdd", "aabbccdd"},
      {"00", "0"},
      {"0xDEADBEEF", "deadbeef"},
      {"serial=DEADBEEF", "deadbeef"},
      {"3735928559", "deadbeef"},
      {"255", "ff"},
      {"256", "100"},
      {"12345678", "bc614e"},
      {"1234567890123456789012345678901234567890", "3a0c92075c0dbf3b8acbc5f96ce3f0ad2"},
      {"DE:AD:BE:EF", "deadbeef"},
      {"00:DE:AD:BE:EF", "deadbeef"},
      {"0", "0"},
      {"", ""},
  };
  for (const auto& r : rows) {
    INFO("canon(\"" << r.in << "\")");
    CHECK(canon_serial(r.in) == r.out);
  }
}

// Rows beyond the spec's vectors. The expected values come from running a model of the spec's
// steps on Perl 5.36 with its Math::BigInt 1.999830, the library the original calls; the same
// model agreed with canon_serial() on 550,000 random strings when this was written.
TEST_CASE("canon: prefixes, colon form, decimal reading and the Math::BigInt fallback", "[pki]") {
  struct Row {
    const char* in;
    const char* out;
  };
  const Row rows[] = {
      // Prefix order: one "0x", then one "serial=".
      {"0X0a", "a"},
      {"0x0x1f", "1f"},
      {"0xserial=ff", "ff"},
      {"serial=0xff", "ff"},
      {"SERIAL=0A", "a"},
      {"Serial=10", "a"},
      {"serial=serial=1", "nan"},
      {"0x", "nan"},
      {"serial=", "nan"},
      // Colon form: no validation, zeros stripped only before a hex digit.
      {":", ""},
      {"::", ""},
      {"0:0", "0"},
      {"00:00", "0"},
      {"00:zz", "0zz"},
      {"0:zz", "0zz"},
      {"0z:1", "0z1"},
      {":00:0a", "a"},
      {"7F:3A:9C", "7f3a9c"},
      {"0xde:ad", "dead"},
      {"serial=00:01", "1"},
      // All digits are decimal; all hex is hex.
      {"02", "2"},
      {"0A", "a"},
      {"00000", "0"},
      {"007", "7"},
      {"18446744073709551616", "10000000000000000"},
      {"1e3", "1e3"},
      {"1E3", "1e3"},
      {"1e99", "1e99"},
      {"0x1e5", "1e5"},
      {"e1", "e1"},
      // Math::BigInt: prefixes, signs, underscores, fractions and exponents.
      {"xff", "ff"},
      {"x_ff", "ff"},
      {"0x_1f", "nan"},
      {"0b101_1", "b"},
      {"b1_0", "2"},
      {"0o17", "f"},
      {"o17", "f"},
      {"0o_17", "f"},
      {"0o8", "nan"},
      {"1.5e3", "5dc"},
      {"1.5", "nan"},
      {"1.50e1", "f"},
      {"-5", "-0x5"},
      {"+5", "5"},
      {"-0", "0"},
      {"-0x1f", "-0x1f"},
      {"0x-1", "-0x1"},
      {"-x10", "-0x10"},
      {"+0x10", "10"},
      {"-0x0_0", "0"},
      {"1_000", "3e8"},
      {"1__0", "a"},
      {"_1", "nan"},
      {"1_", "1"},
      {"12_", "c"},
      {"1__", "1"},
      {"12.", "c"},
      {".5e1", "5"},
      {"+.5e1", "5"},
      {"1.e1", "a"},
      {"12.e+0", "c"},
      {"1._5", "nan"},
      {"1_.5", "nan"},
      {".e1", "nan"},
      {"1e-1", "nan"},
      {"10e-1", "1"},
      {"1e+2", "64"},
      {"1e+", "nan"},
      {"1e+_1", "nan"},
      {"1e+1_0", "2540be400"},
      {"1e+30", "c9f2c9cd04674edea40000000"},
      {"-1e+3", "-0x3e8"},
      {"5e-0", "5"},
      {"1e-0", "1"},
      // A "-0" exponent: Math::BigInt keeps its sign unless an addition clears it.
      {"012e-0", "nan"},
      {"0_12e-0", "nan"},
      {"10e-0", "a"},
      {"12e-0", "c"},
      {"12e-0 ", "nan"},
      {"+12.00e-00", "c"},
      {"1.0e-0", "1"},
      {"x10p-0", "10"},
      {"x1p-0", "nan"},
      {"xap-0", "a"},
      {"x14p-0", "14"},
      {"1.5e+0_1", "f"},
      {"1.0", "1"},
      {"0.0e-5", "0"},
      {"123456789012345678901234567890e-10", "nan"},
      {"x1p+4", "10"},
      {"x1.8p+1", "3"},
      {"x1p-1", "nan"},
      {"x2p-1", "1"},
      {"x.8p1", "1"},
      {"0x1.8p1", "nan"}, // "0x" is stripped first, then "1.8p1" is not a number
      {"0x1p-1", "nan"},
      {"0b1_1p+2", "c"},
      {"b.1p1", "1"},
      {"0o7.4p1", "f"},
      {"o.4p1", "1"},
      {"01p+0", "1"},
      {"01p3", "8"},
      {"0__1p+0", "1"},
      {"00_7p1", "e"},
      {"0_7p1", "e"},
      {"08p1", "nan"},
      {"0_8", "8"},
      {"0.5p1", "nan"},
      {"inf", "inf"},
      {"INF", "inf"},
      {"-inf", "-inf"},
      {" -inf ", "-inf"},
      {"+inf", "inf"},
      {"infinity", "inf"},
      {"infinit", "nan"},
      {"nan", "nan"},
      {"-nan", "nan"},
      {" 12 ", "c"},
      {"\t7\n", "7"},
      {" ff", "nan"},
      {"1 2", "nan"},
      {"x", "nan"},
      {"-x", "nan"},
      {"x_", "nan"},
      {"-", "nan"},
      {"+", "nan"},
      {".", "nan"},
      {"zz", "nan"},
      {"g", "nan"},
      {"ffz", "nan"},
      {"0xg", "nan"},
      {"abcdefg", "nan"},
      {"deadbeefz", "nan"},
      {"12ab_", "nan"},
  };
  for (const auto& r : rows) {
    INFO("canon(\"" << r.in << "\")");
    CHECK(canon_serial(r.in) == r.out);
  }
}

TEST_CASE("canon bounds the work on huge decimal and Math::BigInt inputs", "[pki]") {
  // Exact up to the limit...
  CHECK(canon_serial(std::string(kCanonMaxInput, '9')).size() > 3000);
  CHECK(canon_serial("9e+1000").substr(0, 16) == "223fed07231cac30");
  // ... and "nan" beyond it, where the original would build a number of megabytes.
  CHECK(canon_serial(std::string(kCanonMaxInput + 1, '9')) == "nan");
  CHECK(canon_serial("1e+999999999") == "nan");
  CHECK(canon_serial("x1p+99999999") == "nan");
  // Hex and colon forms stay exact at any length.
  CHECK(canon_serial(std::string(10000, 'f')) == std::string(10000, 'f'));
}

TEST_CASE("canon models the serial QUIRK of agent-and-wire 4.2.1", "[pki]") {
  // H = dispatcher serial as openssl prints it; wire = canon(H); stored = canon(wire);
  // loaded = canon(stored); trusted iff loaded == canon(H).
  struct Row {
    const char* h;
    const char* wire;
    const char* stored;
    const char* loaded;
    bool trusted;
  };
  const Row rows[] = {
      {"02", "2", "2", "2", true},
      {"0A", "a", "a", "a", true},
      {"10", "a", "a", "a", true},
      {"19", "13", "d", "d", false},
      {"25", "19", "13", "d", false},
      {"0100", "64", "40", "28", false},
      {"7F3A9C", "7f3a9c", "7f3a9c", "7f3a9c", true},
  };
  for (const auto& r : rows) {
    INFO("H = " << r.h);
    std::string wire = canon_serial(r.h);
    std::string stored = canon_serial(wire);
    std::string loaded = canon_serial(stored);
    CHECK(wire == r.wire);
    CHECK(stored == r.stored);
    CHECK(loaded == r.loaded);
    CHECK((loaded == wire) == r.trusted);
  }
}

TEST_CASE("new_serial draws serials that canon leaves alone", "[pki]") {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    std::string s = new_serial();
    INFO(s);
    REQUIRE(s.size() == 32);
    CHECK(s[0] != '0');
    CHECK(s.find_first_of("abcdef") != std::string::npos);
    CHECK(s.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(is_canon_fixed_point(s));
    CHECK(canon_serial(canon_serial(s)) == s);
    seen.insert(s);
  }
  CHECK(seen.size() == 2000);
  // The property new_serial keeps, on fixed rows.
  CHECK(is_canon_fixed_point("7f3a9c"));
  CHECK_FALSE(is_canon_fixed_point("19"));
  CHECK_FALSE(is_canon_fixed_point("0a"));
}

TEST_CASE("tls::serial_hex and openssl_serial_hex are one form, negative serials included",
          "[pki]") {
  // tls::serial_hex (the dispatcher's identity and the peer serial the agent looks up) prints
  // what openssl_serial_hex (cert_info, the registry and ca.serial) prints, which is what
  // `openssl x509 -serial` prints; before, the two differed on a negative serial (FB, -05).
  struct Row {
    std::vector<unsigned char> der;
    const char* tls;
    const char* openssl;
  };
  const Row rows[] = {
      {{0x02}, "02", "02"},   {{0x00, 0x80}, "80", "80"},       {{0x01, 0x00}, "0100", "0100"},
      {{0xfb}, "-05", "-05"}, {{0xff, 0x00}, "-0100", "-0100"},
  };
  for (const auto& r : rows) {
    INFO(r.openssl);
    mbedtls_x509_buf b{};
    b.p = const_cast<unsigned char*>(r.der.data());
    b.len = r.der.size();
    CHECK(tls::serial_hex(b) == r.tls);
    CHECK(openssl_serial_hex(r.der.data(), r.der.size()) == r.openssl);
  }
}

TEST_CASE("ca.serial text: whole-byte uppercase hex and a newline", "[pki]") {
  struct Row {
    const char* hex;
    const char* text; // nullptr: refused
  };
  const Row rows[] = {
      {"1", "01\n"},      {"01", "01\n"},         {"a", "0A\n"},     {"100", "0100\n"},
      {"0100", "0100\n"}, {"7f3a9c", "7F3A9C\n"}, {"000ff", "FF\n"}, {"0", "00\n"},
      {"", nullptr},      {"xyz", nullptr},       {"0x10", nullptr}, {"1 2", nullptr},
  };
  for (const auto& r : rows) {
    INFO("hex = \"" << r.hex << "\"");
    auto text = format_ca_serial(r.hex);
    if (r.text == nullptr) {
      CHECK_FALSE(text.ok());
    } else {
      REQUIRE(text.ok());
      CHECK(*text == r.text);
    }
  }

  struct Parse {
    const char* text;
    const char* serial; // nullptr: refused
  };
  const Parse parses[] = {
      {"01\n", "1"}, {"0100\n", "100"}, {"7F3A9C", "7f3a9c"}, {"  0A  \n", "a"},
      {"00\n", "0"}, {"\n", nullptr},   {"zz\n", nullptr},    {"", nullptr},
  };
  for (const auto& p : parses) {
    INFO("text = \"" << p.text << "\"");
    auto serial = parse_ca_serial(p.text);
    if (p.serial == nullptr) {
      CHECK_FALSE(serial.ok());
    } else {
      REQUIRE(serial.ok());
      CHECK(*serial == p.serial);
    }
  }
}

TEST_CASE("ca.serial file round trip", "[pki]") {
  test::TempDir dir;
  const std::string path = dir.file("ca.serial");
  REQUIRE(write_ca_serial(path, "abc").ok());
  CHECK(dir.read("ca.serial") == "0ABC\n");
  auto back = read_ca_serial(path);
  REQUIRE(back.ok());
  CHECK(*back == "abc");
  auto missing = read_ca_serial(dir.file("absent"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message().find("absent") != std::string::npos);
  dir.write("bad", "not hex\n");
  auto bad = read_ca_serial(dir.file("bad"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.message().find(dir.file("bad")) != std::string::npos);
}
