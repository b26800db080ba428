// Tests for src/pki/key.cpp: generation and inspection of private keys.
#include <catch2/catch.hpp>

#include "pki/key.hpp"
#include "pki_test_support.hpp"

using namespace cx;
using namespace cx::pki;

TEST_CASE("generate_key: EC P-256 by default, RSA in range on request", "[pki]") {
  struct Row {
    KeySpec spec;
    const char* pem_header; // nullptr: refused
    KeyType type;
    unsigned bits;
    const char* curve;
  };
  const Row rows[] = {
      {{}, "-----BEGIN EC PRIVATE KEY-----", KeyType::ec, 256, "secp256r1"},
      {{.type = KeyType::rsa, .rsa_bits = 1024}, nullptr, KeyType::rsa, 0, ""},
      {{.type = KeyType::rsa, .rsa_bits = 2047}, nullptr, KeyType::rsa, 0, ""},
      {{.type = KeyType::rsa, .rsa_bits = 8192}, nullptr, KeyType::rsa, 0, ""},
  };
  for (const auto& r : rows) {
    INFO("rsa_bits " << r.spec.rsa_bits);
    auto pem = generate_key(r.spec);
    if (r.pem_header == nullptr) {
      REQUIRE_FALSE(pem.ok());
      CHECK(pem.message().find("2048 to 4096") != std::string::npos);
      continue;
    }
    REQUIRE(pem.ok());
    CHECK(pem->rfind(r.pem_header, 0) == 0);
    auto info = key_info(*pem);
    REQUIRE(info.ok());
    CHECK(info->type == r.type);
    CHECK(info->bits == r.bits);
    CHECK(info->curve == r.curve);
  }
  // RSA-2048 is made once for the whole run (see pki_test_support.hpp).
  const std::string& rsa = test::rsa2048_key();
  CHECK(rsa.rfind("-----BEGIN RSA PRIVATE KEY-----", 0) == 0);
  auto info = key_info(rsa);
  REQUIRE(info.ok());
  CHECK(info->type == KeyType::rsa);
  CHECK(info->bits == 2048);
  CHECK(info->curve.empty());
  // Two draws differ.
  CHECK(*generate_key() != *generate_key());
}

TEST_CASE("key_info refuses what is not a usable private key", "[pki]") {
  struct Row {
    std::string pem;
    const char* message_part;
  };
  const Row rows[] = {
      {"", "cannot parse the private key"},
      {"garbage", "cannot parse the private key"},
      {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
       "cannot parse the private key"},
      // The CA certificate is not a key.
      {test::test_ca().cert, "cannot parse the private key"},
  };
  for (const auto& r : rows) {
    INFO(r.pem);
    auto info = key_info(r.pem);
    REQUIRE_FALSE(info.ok());
    CHECK(info.message().find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("parse_key_type: ec, rsa with the caller's default size, rsa:<bits>", "[pki]") {
  struct Row {
    const char* text;
    std::string error; // "" = accepted
    KeyType type;
    unsigned bits;
  };
  const std::string forms = "' (use ec, rsa, rsa:2048, rsa:3072 or rsa:4096)";
  const Row rows[] = {
      {"ec", "", KeyType::ec, 0},
      {"rsa", "", KeyType::rsa, 3072}, // the default passed in below
      {"rsa:2048", "", KeyType::rsa, 2048},
      {"rsa:3072", "", KeyType::rsa, 3072},
      {"rsa:4096", "", KeyType::rsa, 4096},
      {"rsa:1024", "invalid key type 'rsa:1024" + forms, KeyType::rsa, 0},
      {"rsa:8192", "invalid key type 'rsa:8192" + forms, KeyType::rsa, 0},
      {"rsa:", "invalid key type 'rsa:" + forms, KeyType::rsa, 0},
      {"RSA", "invalid key type 'RSA" + forms, KeyType::rsa, 0},
      {"ec:256", "invalid key type 'ec:256" + forms, KeyType::rsa, 0},
      {"", "invalid key type '" + forms, KeyType::rsa, 0},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto spec = parse_key_type(r.text, 3072);
    if (!r.error.empty()) {
      CHECK(spec.message() == r.error);
      continue;
    }
    REQUIRE(spec.ok());
    CHECK(spec->type == r.type);
    if (r.type == KeyType::rsa) CHECK(spec->rsa_bits == r.bits);
    // The text form reads back as the same spec (how --background hands it to its child).
    auto again = parse_key_type(key_type_text(*spec), 2048);
    REQUIRE(again.ok());
    CHECK(again->type == spec->type);
    if (r.type == KeyType::rsa) CHECK(again->rsa_bits == spec->rsa_bits);
  }
}
