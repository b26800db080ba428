// Tests for src/pki/cert.cpp: cert_info, verify_cert, key matching and the renewal check.
#include <catch2/catch.hpp>

#include "base/time.hpp"
#include "pki/ca.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "pki_test_support.hpp"

using namespace cx;
using namespace cx::pki;

namespace {
std::string issue(const test::TestCa& ca, const std::string& key, int64_t issued_at,
                  unsigned days) {
  const std::string csr = test::must(create_csr(key, "agent"));
  return test::must(sign_csr(csr, ca.cert, ca.key,
                             {.serial = new_serial(), .days = days, .issued_at = issued_at}));
}
} // namespace

TEST_CASE("cert_info reads the first certificate of a bundle", "[pki]") {
  const auto& ca = test::test_ca();
  const std::string key = test::must(generate_key());
  const std::string leaf = issue(ca, key, 1'800'000'000, 10);
  auto info = cert_info(leaf + ca.cert);
  REQUIRE(info.ok());
  CHECK(info->subject_cn == "agent");
  CHECK(info->not_after == 1'800'000'000 + 10 * 86400);
  CHECK(openssl_time(info->not_after) == "Jan 25 08:00:00 2027 GMT");
  auto ca_first = cert_info(ca.cert + leaf);
  REQUIRE(ca_first.ok());
  CHECK(ca_first->subject_cn == "ctrl-exec CA");
  // A damaged second block does not matter; a damaged first one does.
  CHECK(cert_info(leaf + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());

  struct Row {
    std::string pem;
    const char* message_part;
  };
  const Row rows[] = {
      {"", "cannot parse the certificate"},
      {"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
       "cannot parse the certificate"},
      {"-----BEGIN CERTIFICATE-----\nMIIB\n", "no END line"},
      {key, "no certificate found"},
  };
  for (const auto& r : rows) {
    INFO(r.pem);
    auto bad = cert_info(r.pem);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.message().find(r.message_part) != std::string::npos);
  }
}

TEST_CASE("verify_cert checks the chain and the dates", "[pki]") {
  const auto& ca = test::test_ca();
  const std::string key = test::must(generate_key());
  const int64_t now = unix_now();
  const test::TestCa other{test::must(generate_key()), ""};
  const test::TestCa other_ca{other.key, test::must(create_ca_cert(other.key))};
  const test::TestCa expired_ca{
      other.key, test::must(create_ca_cert(other.key, {.days = 1, .issued_at = now - 5 * 86400}))};

  struct Row {
    const char* name;
    std::string cert, ca_pem;
    const char* message_part; // nullptr: verifies
  };
  const Row rows[] = {
      {"valid", issue(ca, key, 0, 825), ca.cert, nullptr},
      {"CA bundle with another CA first", issue(ca, key, 0, 825), other_ca.cert + ca.cert, nullptr},
      {"expired", issue(ca, key, now - 10 * 86400, 1), ca.cert, "expired"},
      {"not yet valid", issue(ca, key, now + 10 * 86400, 1), ca.cert, "future"},
      {"other CA", issue(other_ca, key, 0, 825), ca.cert, "not correctly signed"},
      {"expired CA", issue(expired_ca, key, now - 2 * 86400, 825), expired_ca.cert, "expired"},
      {"intermediates are not taken from the cert file",
       issue(other_ca, key, 0, 825) + other_ca.cert, ca.cert, "not correctly signed"},
      {"no CA", issue(ca, key, 0, 825), "", "cannot parse the CA certificates"},
      {"no cert", "", ca.cert, "cannot parse the certificate"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    Status st = verify_cert(r.cert, r.ca_pem);
    INFO(st.message());
    if (r.message_part == nullptr) {
      CHECK(st.ok());
    } else {
      REQUIRE_FALSE(st.ok());
      CHECK(st.message().find(r.message_part) != std::string::npos);
    }
  }
}

TEST_CASE("key_matches_cert and the renewal check", "[pki]") {
  const auto& ca = test::test_ca();
  const std::string key = test::must(generate_key());
  const std::string other = test::must(generate_key());
  const std::string cert = issue(ca, key, 0, 825);
  const std::string rsa_cert = issue(ca, test::rsa2048_key(), 0, 825);

  struct Row {
    const char* name;
    std::string key, cert;
    bool matches;
  };
  const Row rows[] = {
      {"own key", key, cert, true},
      {"other EC key", other, cert, false},
      {"RSA key", test::rsa2048_key(), rsa_cert, true},
      {"RSA key, EC cert", test::rsa2048_key(), cert, false},
      {"CA key and cert", ca.key, ca.cert, true},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    auto m = key_matches_cert(r.key, r.cert);
    REQUIRE(m.ok());
    CHECK(*m == r.matches);
  }
  CHECK_FALSE(key_matches_cert("junk", cert).ok());
  CHECK_FALSE(key_matches_cert(key, "junk").ok());

  CHECK(check_renewed_cert(cert, ca.cert, key).ok());
  Status wrong_key = check_renewed_cert(cert, ca.cert, other);
  REQUIRE_FALSE(wrong_key.ok());
  CHECK(wrong_key.message() ==
        "renewed certificate rejected: its public key is not the agent's key");
  Status expired = check_renewed_cert(issue(ca, key, unix_now() - 10 * 86400, 1), ca.cert, key);
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.message().find("expired") != std::string::npos);
}
