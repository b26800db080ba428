// Interoperability of src/pki with the `openssl` command the original is built on: each side
// reads what the other writes. Skipped with a warning when openssl is not on PATH.
#include <catch2/catch.hpp>

#include "base/strings.hpp"
#include "pki/ca.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "pki_test_support.hpp"

using namespace cx;
using namespace cx::pki;
using test::OpenSsl;
using test::TempDir;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// `openssl x509 -noout -serial` prints "serial=0A".
std::string openssl_serial(const OpenSsl& openssl, const std::string& file) {
  auto r = openssl("x509 -noout -serial -in " + file);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return std::string(trim(r.output));
}

// A CA made the way the original makes one: `openssl req -x509` with Debian's v3_ca defaults
// (RSA-2048 here instead of 4096, for speed). Files ossl-ca.key (PKCS#8) and ossl-ca.crt.
void make_openssl_ca(const OpenSsl& openssl) {
  auto key = openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out ossl-ca.key");
  REQUIRE(key.exit_code == 0);
  auto cert = openssl("req -new -x509 -key ossl-ca.key -subj '/CN=ctrl-exec CA' -days 3650 "
                      "-out ossl-ca.crt");
  INFO(cert.output);
  REQUIRE(cert.exit_code == 0);
}

} // namespace

TEST_CASE("openssl verify accepts certificates our CA signs", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  const auto& ca = test::test_ca();
  dir.write("ca.crt", ca.cert);

  struct Row {
    const char* name;
    std::string key;
  };
  const Row rows[] = {{"ec", test::must(generate_key())}, {"rsa", test::rsa2048_key()}};
  for (const auto& r : rows) {
    INFO(r.name);
    const std::string csr = test::must(create_csr(r.key, std::string("agent-") + r.name));
    const std::string cert = test::must(sign_csr(csr, ca.cert, ca.key, {.serial = new_serial()}));
    const std::string file = std::string(r.name) + ".crt";
    dir.write(file, cert);
    auto v = openssl("verify -CAfile ca.crt " + file);
    INFO(v.output);
    CHECK(v.exit_code == 0);
    CHECK(trim(v.output) == file + ": OK");
  }

  // The extensions read back as intended, and the leaf's AKID is the CA's SKID.
  auto ca_text = openssl("x509 -noout -text -in ca.crt");
  INFO(ca_text.output);
  REQUIRE(ca_text.exit_code == 0);
  CHECK(contains(ca_text.output, "Version: 3 (0x2)"));
  CHECK(contains(ca_text.output, "Signature Algorithm: ecdsa-with-SHA256"));
  CHECK(contains(ca_text.output, "Subject: CN = ctrl-exec CA"));
  CHECK(contains(ca_text.output, "X509v3 Basic Constraints: critical\n                CA:TRUE"));
  CHECK(contains(ca_text.output,
                 "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"));
  const std::string skid_label = "X509v3 Subject Key Identifier: \n                ";
  size_t at = ca_text.output.find(skid_label);
  REQUIRE(at != std::string::npos);
  std::string skid = ca_text.output.substr(at + skid_label.size());
  skid = skid.substr(0, skid.find('\n'));
  auto leaf_text = openssl("x509 -noout -text -in ec.crt");
  INFO(leaf_text.output);
  CHECK(contains(leaf_text.output, "Subject: CN = agent-ec"));
  CHECK(contains(leaf_text.output, "X509v3 Basic Constraints: \n                CA:FALSE"));
  CHECK(contains(leaf_text.output, "X509v3 Authority Key Identifier: \n                " + skid));
}

TEST_CASE("certificates we issue from an OpenSSL-made CA verify on both sides", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  make_openssl_ca(openssl);
  const std::string ca_cert = dir.read("ossl-ca.crt");
  const std::string ca_key = dir.read("ossl-ca.key");
  CHECK(ca_key.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0); // PKCS#8, as the original's

  const std::string key = test::must(generate_key());
  const std::string csr = test::must(create_csr(key, "web-01"));
  const std::string cert = test::must(sign_csr(csr, ca_cert, ca_key, {.serial = new_serial()}));
  dir.write("leaf.crt", cert);
  auto v = openssl("verify -CAfile ossl-ca.crt leaf.crt");
  INFO(v.output);
  CHECK(v.exit_code == 0);
  CHECK(trim(v.output) == "leaf.crt: OK");
  CHECK(verify_cert(cert, ca_cert).ok());

  // And the original's own issuance, `openssl x509 -req` without extensions: a v1 certificate,
  // which our verification and renewal check accept.
  dir.write("agent.key", key);
  dir.write("agent.csr", csr);
  auto issued = openssl("x509 -req -in agent.csr -CA ossl-ca.crt -CAkey ossl-ca.key "
                        "-CAserial ca.serial -CAcreateserial -days 825 -out v1.crt");
  INFO(issued.output);
  REQUIRE(issued.exit_code == 0);
  const std::string v1 = dir.read("v1.crt");
  auto info = cert_info(v1);
  REQUIRE(info.ok());
  CHECK(info->version == 1);
  CHECK(info->subject_cn == "web-01");
  CHECK(verify_cert(v1, ca_cert).ok());
  CHECK(check_renewed_cert(v1, ca_cert, key).ok());
}

TEST_CASE("openssl req -verify accepts the CSRs we make", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  struct Row {
    const char* name;
    std::string key;
  };
  const Row rows[] = {{"ec", test::must(generate_key())}, {"rsa", test::rsa2048_key()}};
  for (const auto& r : rows) {
    INFO(r.name);
    const std::string file = std::string(r.name) + ".csr";
    dir.write(file, test::must(create_csr(r.key, "web-01.example.com")));
    auto v = openssl("req -verify -noout -subject -in " + file);
    INFO(v.output);
    CHECK(v.exit_code == 0);
    CHECK(contains(v.output, "Certificate request self-signature verify OK"));
    CHECK(contains(v.output, "subject=CN = web-01.example.com"));
  }
}

TEST_CASE("our validator on CSRs made by openssl req", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  // Keys: one RSA-4096 (slow), the rest small or elliptic.
  struct Key {
    const char* file;
    const char* genpkey_args;
  };
  const Key keys[] = {
      {"rsa4096.key", "-algorithm RSA -pkeyopt rsa_keygen_bits:4096"},
      {"rsa2048.key", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"},
      {"rsa1024.key", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024"},
      {"p256.key", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"},
      {"p384.key", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384"},
      {"p521.key", "-algorithm EC -pkeyopt ec_paramgen_curve:P-521"},
  };
  for (const auto& k : keys) {
    auto r = openssl(std::string("genpkey ") + k.genpkey_args + " -out " + k.file);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }

  struct Row {
    const char* name;
    const char* key_file;
    const char* req_args;
    const char* message_part; // nullptr: accepted
    const char* key_text;
  };
  const Row rows[] = {
      {"rsa4096 sha256", "rsa4096.key", "-sha256", nullptr, "RSA 4096"},
      {"p256 sha256", "p256.key", "-sha256", nullptr, "EC secp256r1"},
      {"p384 sha384", "p384.key", "-sha384", nullptr, "EC secp384r1"},
      {"rsa2048 sha512", "rsa2048.key", "-sha512", nullptr, "RSA 2048"},
      {"rsa2048 pss", "rsa2048.key", "-sha256 -sigopt rsa_padding_mode:pss", nullptr, "RSA 2048"},
      {"rsa2048 md5", "rsa2048.key", "-md5", "signature algorithm is too weak: RSA with MD5", ""},
      {"rsa2048 sha1", "rsa2048.key", "-sha1", "signature algorithm is too weak: RSA with SHA1",
       ""},
      {"p256 sha1", "p256.key", "-sha1", "signature algorithm is too weak", ""},
      {"rsa1024", "rsa1024.key", "-sha256", "public key is too small: RSA 1024", ""},
      {"p521", "p521.key", "-sha256", "public key is not accepted: EC secp521r1", ""},
  };
  const auto& ca = test::test_ca();
  dir.write("ca.crt", ca.cert);
  int n = 0;
  for (const auto& r : rows) {
    INFO(r.name);
    const std::string file = "req" + std::to_string(n++) + ".csr";
    auto made = openssl(std::string("req -new -key ") + r.key_file + " -subj /CN=agent-" +
                        std::to_string(n) + " " + r.req_args + " -out " + file);
    INFO(made.output);
    REQUIRE(made.exit_code == 0);
    const std::string csr = dir.read(file);
    auto info = validate_csr(csr);
    INFO(info.message());
    if (r.message_part != nullptr) {
      REQUIRE_FALSE(info.ok());
      CHECK(contains(info.message(), r.message_part));
      CHECK_FALSE(sign_csr(csr, ca.cert, ca.key, {.serial = new_serial()}).ok());
      continue;
    }
    REQUIRE(info.ok());
    CHECK(info->cn == "agent-" + std::to_string(n));
    CHECK(info->key == r.key_text);
    // Accepted requests become certificates openssl verifies.
    const std::string cert = test::must(sign_csr(csr, ca.cert, ca.key, {.serial = new_serial()}));
    dir.write("signed.crt", cert);
    auto v = openssl("verify -CAfile ca.crt signed.crt");
    INFO(v.output);
    CHECK(v.exit_code == 0);
    auto matches = key_matches_cert(dir.read(r.key_file), cert);
    REQUIRE(matches.ok());
    CHECK(*matches);
  }
}

TEST_CASE("pairing code equals the value from openssl dgst -sha256", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  REQUIRE(openssl("req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem "
                  "-subj /CN=host -out openssl.csr")
              .exit_code == 0);
  struct Row {
    const char* file;
    std::string pem;
  };
  const Row rows[] = {
      {"ours.csr", test::must(create_csr(test::must(generate_key()), "host"))},
      {"openssl.csr", dir.read("openssl.csr")},
      {"no-newline.csr", dir.read("openssl.csr").substr(0, dir.read("openssl.csr").size() - 1)},
  };
  for (const auto& r : rows) {
    INFO(r.file);
    dir.write(r.file, r.pem);
    auto d = openssl(std::string("dgst -sha256 ") + r.file);
    INFO(d.output);
    REQUIRE(d.exit_code == 0);
    // "SHA2-256(ours.csr)= 3f1c..."
    size_t eq = d.output.find("= ");
    REQUIRE(eq != std::string::npos);
    uint32_t head = static_cast<uint32_t>(std::stoul(d.output.substr(eq + 2, 8), nullptr, 16));
    char expected[8];
    std::snprintf(expected, sizeof expected, "%06u", head % 1000000u);
    CHECK(pairing_code(r.pem) == expected);
  }
}

TEST_CASE("serial text equals openssl x509 -serial in both directions", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  const auto& ca = test::test_ca();
  const std::string key = test::must(generate_key());
  const std::string csr = test::must(create_csr(key, "serial-test"));

  // Certificates we issue, including serials that need DER sign padding (top bit set).
  const char* ours[] = {
      "80", "ff", "a", "100", "ff00", "7f3a9c", "8000000000000000000000000000000000000001", "0a"};
  for (const char* serial : ours) {
    INFO("our serial " << serial);
    const std::string cert = test::must(sign_csr(csr, ca.cert, ca.key, {.serial = serial}));
    dir.write("ours.crt", cert);
    auto info = cert_info(cert);
    REQUIRE(info.ok());
    CHECK(openssl_serial(openssl, "ours.crt") == "serial=" + info->serial);
  }
  const std::string fresh = new_serial();
  dir.write("fresh.crt", test::must(sign_csr(csr, ca.cert, ca.key, {.serial = fresh})));
  CHECK(openssl_serial(openssl, "fresh.crt") == "serial=" + to_upper(fresh));

  // Certificates openssl issues with chosen serials, read by us.
  dir.write("ca.crt", ca.cert);
  dir.write("ca.key", ca.key);
  dir.write("agent.csr", csr);
  const char* theirs[] = {
      "0",     "1",      "10", "0x80",  "0x0A",
      "0x100", "0xff00", "-5", "-0x80", "0x00f1e2d3c4b5a697887766554433221100ffeedd"};
  for (const char* serial : theirs) {
    INFO("openssl -set_serial " << serial);
    auto issued = openssl(std::string("x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -days 1 ") +
                          "-set_serial " + serial + " -out theirs.crt");
    INFO(issued.output);
    REQUIRE(issued.exit_code == 0);
    auto info = cert_info(dir.read("theirs.crt"));
    REQUIRE(info.ok());
    CHECK(openssl_serial(openssl, "theirs.crt") == "serial=" + info->serial);
  }
}

TEST_CASE("key_matches_cert agrees with openssl-made keys and certificates", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  REQUIRE(
      openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out agent.key").exit_code ==
      0);
  REQUIRE(
      openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.key").exit_code ==
      0);
  REQUIRE(
      openssl("req -new -x509 -key agent.key -subj /CN=agent -days 30 -out agent.crt").exit_code ==
      0);
  const std::string key = dir.read("agent.key");
  const std::string cert = dir.read("agent.crt");
  CHECK(key.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0); // PKCS#8, like a Perl agent's key

  struct Row {
    const char* name;
    std::string key;
    bool matches;
  };
  const Row rows[] = {
      {"same key", key, true},
      {"other key", dir.read("other.key"), false},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    auto m = key_matches_cert(r.key, cert);
    INFO(m.message());
    REQUIRE(m.ok());
    CHECK(*m == r.matches);
  }

  // The agent's /renew makes a CSR from such an existing key; openssl accepts it.
  dir.write("renew.csr", test::must(create_csr(key, "agent")));
  auto v = openssl("req -verify -noout -in renew.csr");
  INFO(v.output);
  CHECK(v.exit_code == 0);
}

TEST_CASE("key_info reads every unencrypted key form openssl writes", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  REQUIRE(openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa8.pem").exit_code ==
          0);
  REQUIRE(
      openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec8.pem").exit_code ==
      0);
  REQUIRE(openssl("pkey -in rsa8.pem -traditional -out rsa1.pem").exit_code == 0);
  REQUIRE(openssl("pkey -in ec8.pem -traditional -out sec1.pem").exit_code == 0);
  REQUIRE(openssl("pkey -in ec8.pem -outform DER -out ec8.der").exit_code == 0);
  REQUIRE(openssl("pkey -in rsa8.pem -aes256 -passout pass:secret -out enc.pem").exit_code == 0);
  REQUIRE(openssl("genpkey -algorithm ED25519 -out ed.pem").exit_code == 0);

  struct Row {
    const char* file;
    const char* header;
    const char* message_part; // nullptr: accepted
    KeyType type;
    unsigned bits;
  };
  const Row rows[] = {
      {"rsa8.pem", "-----BEGIN PRIVATE KEY-----", nullptr, KeyType::rsa, 2048},
      {"rsa1.pem", "-----BEGIN RSA PRIVATE KEY-----", nullptr, KeyType::rsa, 2048},
      {"ec8.pem", "-----BEGIN PRIVATE KEY-----", nullptr, KeyType::ec, 256},
      {"sec1.pem", "-----BEGIN EC PRIVATE KEY-----", nullptr, KeyType::ec, 256},
      {"ec8.der", "", nullptr, KeyType::ec, 256},
      {"enc.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----", "encrypted", KeyType::rsa, 0},
      {"ed.pem", "-----BEGIN PRIVATE KEY-----", "cannot parse the private key", KeyType::ec, 0},
  };
  for (const auto& r : rows) {
    INFO(r.file);
    const std::string pem = dir.read(r.file);
    CHECK(pem.rfind(r.header, 0) == 0);
    auto info = key_info(pem);
    if (r.message_part != nullptr) {
      REQUIRE_FALSE(info.ok());
      CHECK(contains(info.message(), r.message_part));
      continue;
    }
    INFO(info.message());
    REQUIRE(info.ok());
    CHECK(info->type == r.type);
    CHECK(info->bits == r.bits);
  }

  // And openssl reads the keys we write.
  dir.write("ours-ec.pem", test::must(generate_key()));
  dir.write("ours-rsa.pem", test::rsa2048_key());
  for (const char* file : {"ours-ec.pem", "ours-rsa.pem"}) {
    INFO(file);
    auto c = openssl(std::string("pkey -check -noout -in ") + file);
    INFO(c.output);
    CHECK(c.exit_code == 0);
  }
}

TEST_CASE("openssl x509 -CAserial continues from the ca.serial we write", "[pki]") {
  CX_REQUIRE_OPENSSL();
  TempDir dir;
  OpenSsl openssl(dir);
  const auto& ca = test::test_ca();
  dir.write("ca.crt", ca.cert);
  dir.write("ca.key", ca.key);
  dir.write("agent.csr", test::must(create_csr(test::must(generate_key()), "agent")));

  struct Row {
    const char* last;       // what we record
    const char* next;       // what openssl issues next, as openssl prints it
    const char* file_after; // what openssl leaves in ca.serial
  };
  const Row rows[] = {
      {"7f", "80", "80\n"},
      {"1", "02", "02\n"},
      {"ff", "0100", "0100\n"},
      {"c0ffee00c0ffee00c0ffee00c0ffee00", "C0FFEE00C0FFEE00C0FFEE00C0FFEE01",
       "C0FFEE00C0FFEE00C0FFEE00C0FFEE01\n"},
  };
  for (const auto& r : rows) {
    INFO(r.last);
    REQUIRE(write_ca_serial(dir.file("ca.serial"), r.last).ok());
    auto issued = openssl("x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAserial ca.serial "
                          "-days 1 -out next.crt");
    INFO(issued.output);
    REQUIRE(issued.exit_code == 0);
    CHECK(openssl_serial(openssl, "next.crt") == std::string("serial=") + r.next);
    CHECK(dir.read("ca.serial") == r.file_after);
    auto back = read_ca_serial(dir.file("ca.serial"));
    REQUIRE(back.ok());
    CHECK(*back == canon_serial(std::string(r.next) + ":")); // hex reading, via the colon form
    auto v = openssl("verify -CAfile ca.crt next.crt");
    CHECK(v.exit_code == 0);
  }
}
