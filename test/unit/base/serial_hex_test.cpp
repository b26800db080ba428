// Tests for src/base/serial_hex.cpp.
#include <catch2/catch.hpp>

#include <vector>

#include "base/serial_hex.hpp"

using namespace cx;

TEST_CASE("openssl_serial_hex prints DER integers the way openssl x509 -serial does", "[base]") {
  struct Row {
    std::vector<unsigned char> der;
    const char* out;
  };
  const Row rows[] = {
      {{0x02}, "02"},
      {{0x0a}, "0A"},
      {{0x01, 0x00}, "0100"},
      {{0x00, 0x80}, "80"}, // sign padding is not printed
      {{0x00, 0xff, 0x00}, "FF00"},
      {{0x7f, 0x3a, 0x9c}, "7F3A9C"},
      {{0x00}, "00"},
      {{}, "00"},
      {{0xfb}, "-05"}, // negative serials print as "-" and the magnitude
      {{0x80}, "-80"},
      {{0xff, 0x00}, "-0100"},
      {{0x00, 0x00, 0x05}, "05"}, // non-minimal DER (OpenSSL refuses it; mbedTLS does not)
  };
  for (const auto& r : rows) {
    INFO(r.out);
    CHECK(openssl_serial_hex(r.der.data(), r.der.size()) == r.out);
  }
}
