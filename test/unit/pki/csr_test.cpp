// Tests for src/pki/csr.cpp: CSR creation, the signer's validation rules, the pairing code.
#include <catch2/catch.hpp>

#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki_test_support.hpp"

using namespace cx;
using namespace cx::pki;

TEST_CASE("create_csr output passes validate_csr", "[pki]") {
  struct Row {
    std::string key;
    const char* cn;
    const char* key_text;
    const char* signature;
  };
  const Row rows[] = {
      {test::must(generate_key()), "web-01.example.com", "EC secp256r1", "ECDSA with SHA256"},
      {test::rsa2048_key(), "db-7", "RSA 2048", "RSA with SHA-256"},
      // Name syntax is data, not mbedTLS's "CN=..." string syntax.
      {test::must(generate_key()), "a,O=evil\\", "EC secp256r1", "ECDSA with SHA256"},
  };
  for (const auto& r : rows) {
    INFO(r.cn);
    std::string csr = test::must(create_csr(r.key, r.cn));
    CHECK(csr.rfind("-----BEGIN CERTIFICATE REQUEST-----\n", 0) == 0);
    CHECK(csr.back() == '\n');
    auto info = validate_csr(csr);
    INFO(info.message());
    REQUIRE(info.ok());
    CHECK(info->cn == r.cn);
    CHECK(info->key == r.key_text);
    CHECK(info->signature == r.signature);
    CHECK(validate_csr(csr, std::string_view(r.cn)).ok());
  }
}

TEST_CASE("create_csr refuses bad input", "[pki]") {
  const std::string key = test::must(generate_key());
  CHECK_FALSE(create_csr(key, "").ok());
  CHECK_FALSE(create_csr(key, "bad\nname").ok());
  CHECK_FALSE(create_csr("not a key", "host").ok());
}

TEST_CASE("validate_csr refuses with a message naming the problem", "[pki]") {
  const std::string key = test::must(generate_key());
  const std::string good = test::must(create_csr(key, "web-01"));

  // Flip one bit of the signature: the last base64 line before the END line.
  std::string tampered = good;
  size_t end_line = tampered.find("-----END");
  size_t pos = end_line - 6;
  tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';

  std::string legacy_header = good;
  legacy_header.replace(0, 35, "-----BEGIN NEW CERTIFICATE REQUEST-----");

  struct Row {
    const char* name;
    std::string csr;
    std::optional<std::string_view> expected_cn;
    const char* message_part;
  };
  const Row rows[] = {
      {"too large", good + std::string(kMaxCsrBytes, ' '), std::nullopt, "too large"},
      {"empty", "", std::nullopt, "must begin with -----BEGIN CERTIFICATE REQUEST-----"},
      {"leading space", " " + good, std::nullopt, "must begin with"},
      {"legacy header", legacy_header, std::nullopt, "must begin with"},
      {"a certificate", test::test_ca().cert, std::nullopt, "must begin with"},
      {"garbage body",
       "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
       std::nullopt, "CSR cannot be parsed"},
      {"bad signature", tampered, std::nullopt, "self-signature does not verify"},
      {"wrong identity", good, std::string_view("web-02"), "does not match the expected identity"},
      {"identity is exact", good, std::string_view("WEB-01"),
       "does not match the expected identity"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    auto info = validate_csr(r.csr, r.expected_cn);
    REQUIRE_FALSE(info.ok());
    INFO(info.message());
    CHECK(info.message().find(r.message_part) != std::string::npos);
  }
  // The size limit counts bytes: exactly kMaxCsrBytes is still allowed.
  std::string padded = good + std::string(kMaxCsrBytes - good.size(), '\n');
  CHECK(validate_csr(padded).ok());
}

TEST_CASE("pairing_code: SHA-256 prefix modulo one million, six digits", "[pki]") {
  struct Row {
    const char* pem;
    const char* code;
  };
  // SHA-256("") = e3b0c442..., 0xe3b0c442 = 3820012610; SHA-256("abc") = ba7816bf...
  const Row rows[] = {
      {"", "012610"},
      {"abc", "432319"},
  };
  for (const auto& r : rows) {
    INFO(r.pem);
    CHECK(pairing_code(r.pem) == r.code);
  }
  // The exact bytes count: the trailing newline changes the code.
  const std::string csr = test::must(create_csr(test::must(generate_key()), "host"));
  CHECK(pairing_code(csr).size() == 6);
  CHECK(pairing_code(csr) != pairing_code(csr.substr(0, csr.size() - 1)));
}
