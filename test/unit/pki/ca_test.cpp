// Tests for src/pki/ca.cpp: the self-signed CA and CSR signing.
#include <catch2/catch.hpp>

#include "base/strings.hpp"
#include "base/time.hpp"
#include "pki/ca.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "pki_test_support.hpp"

using namespace cx;
using namespace cx::pki;

TEST_CASE("create_ca_cert: a v3 CA with the requested name and validity", "[pki]") {
  const std::string key = test::must(generate_key());
  const int64_t at = 1'800'000'000;
  struct Row {
    CaOptions opts;
    bool accepted;
  };
  const Row rows[] = {
      {{}, true},
      {{.cn = "Example_CA v2.1-test", .days = 1}, true},
      {{.cn = "", .days = 3650}, false},
      {{.cn = "bad/name", .days = 3650}, false},
      {{.cn = "a,b", .days = 3650}, false},
      {{.cn = "caf\xc3\xa9", .days = 3650}, false},
      {{.cn = "ok", .days = 0}, false},
      {{.cn = "ok", .days = kMaxValidityDays + 1}, false},
  };
  for (const auto& r : rows) {
    INFO("cn '" << r.opts.cn << "' days " << r.opts.days);
    CaOptions opts = r.opts;
    opts.issued_at = at;
    auto pem = create_ca_cert(key, opts);
    if (!r.accepted) {
      CHECK_FALSE(pem.ok());
      continue;
    }
    REQUIRE(pem.ok());
    auto info = cert_info(*pem);
    REQUIRE(info.ok());
    CHECK(info->subject_cn == opts.cn);
    CHECK(info->issuer_cn == opts.cn);
    CHECK(info->version == 3);
    CHECK(info->is_ca);
    CHECK(info->not_before == at - kBackdateSeconds);
    CHECK(info->not_after == at + int64_t{opts.days} * 86400);
    CHECK(info->serial.size() == 32);
    CHECK(canon_serial(info->serial) == to_lower(info->serial));
    CHECK(key_matches_cert(key, *pem).value());
  }
  CHECK(test::test_ca().cert.rfind("-----BEGIN CERTIFICATE-----\n", 0) == 0);
  CHECK(verify_cert(test::test_ca().cert, test::test_ca().cert).ok());
}

TEST_CASE("sign_csr issues a certificate for the CSR's CN", "[pki]") {
  const auto& ca = test::test_ca();
  struct Row {
    std::string key;
    const char* cn;
    const char* serial;
    const char* openssl_serial;
    unsigned days;
  };
  const Row rows[] = {
      {test::must(generate_key()), "web-01.example.com", "7f3a9c", "7F3A9C", 825},
      {test::rsa2048_key(), "db-7", "80", "80", 365},
      {test::must(generate_key()), "x", "0a", "0A", 1},
      {test::must(generate_key()), "y", "100", "0100", 30},
      {test::must(generate_key()), "z", "ffffffffffffffffffffffffffffffffffffffff",
       "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 825},
  };
  const int64_t before = unix_now();
  for (const auto& r : rows) {
    INFO(r.cn);
    const std::string csr = test::must(create_csr(r.key, r.cn));
    auto cert = sign_csr(csr, ca.cert, ca.key, {.serial = r.serial, .days = r.days});
    INFO(cert.message());
    REQUIRE(cert.ok());
    auto info = cert_info(*cert);
    REQUIRE(info.ok());
    CHECK(info->serial == r.openssl_serial);
    CHECK(info->subject_cn == r.cn);
    CHECK(info->issuer_cn == "ctrl-exec CA");
    CHECK(info->version == 3);
    CHECK_FALSE(info->is_ca);
    CHECK(info->not_before >= before - kBackdateSeconds - 1);
    CHECK(info->not_before <= unix_now() - kBackdateSeconds);
    CHECK(info->not_after - info->not_before == int64_t{r.days} * 86400 + kBackdateSeconds);
    CHECK(verify_cert(*cert, ca.cert).ok());
    CHECK(key_matches_cert(r.key, *cert).value());
    CHECK(check_renewed_cert(*cert, ca.cert, r.key).ok());
  }
}

TEST_CASE("sign_csr binds the CN at renewal and refuses bad requests", "[pki]") {
  const auto& ca = test::test_ca();
  const std::string key = test::must(generate_key());
  const std::string csr = test::must(create_csr(key, "web-01"));
  const std::string other_key = test::must(generate_key());
  const std::string leaf = test::must(sign_csr(csr, ca.cert, ca.key, {.serial = new_serial()}));

  CHECK(sign_csr(csr, ca.cert, ca.key, {.serial = new_serial(), .expected_cn = "web-01"}).ok());

  struct Row {
    const char* name;
    std::string csr, ca_cert, ca_key;
    IssueOptions opts;
    const char* message_part;
  };
  const Row rows[] = {
      {"renewal identity",
       csr,
       ca.cert,
       ca.key,
       {.serial = "abc", .expected_cn = "web-02"},
       "does not match the expected identity"},
      {"not a CSR", "hello", ca.cert, ca.key, {.serial = "abc"}, "must begin with"},
      {"empty serial", csr, ca.cert, ca.key, {.serial = ""}, "invalid certificate serial"},
      {"zero serial", csr, ca.cert, ca.key, {.serial = "000"}, "invalid certificate serial"},
      {"non-hex serial", csr, ca.cert, ca.key, {.serial = "12g"}, "invalid certificate serial"},
      {"21-byte serial",
       csr,
       ca.cert,
       ca.key,
       {.serial = std::string(42, 'a')},
       "invalid certificate serial"},
      {"zero days", csr, ca.cert, ca.key, {.serial = "abc", .days = 0}, "invalid validity"},
      {"CA key mismatch",
       csr,
       ca.cert,
       other_key,
       {.serial = "abc"},
       "CA key does not match the CA certificate"},
      {"CA cert missing", csr, "", ca.key, {.serial = "abc"}, "CA certificate:"},
      {"CA key missing", csr, ca.cert, "", {.serial = "abc"}, "CA key:"},
      {"leaf as CA", csr, leaf, key, {.serial = "abc"}, "not a CA certificate"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    auto cert = sign_csr(r.csr, r.ca_cert, r.ca_key, r.opts);
    REQUIRE_FALSE(cert.ok());
    INFO(cert.message());
    CHECK(cert.message().find(r.message_part) != std::string::npos);
  }
}
