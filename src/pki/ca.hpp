// The dispatcher's private CA: the self-signed CA certificate (setup-ca, dispatcher §4.12) and
// signing of agent and dispatcher CSRs (pairing §4.10, setup-ctrl-exec §4.13, renewal §6.4,
// rotation §9.1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::pki {

// notBefore is set this far before the issuing instant, so that a peer whose clock runs a few
// minutes behind ours (an agent verifying its renewed certificate right away, §6.5) does not
// see a certificate that is "not yet valid". notAfter stays issuing instant + days, as with
// `openssl x509 -days`, so expiry dates match the original's.
inline constexpr int64_t kBackdateSeconds = 300;
inline constexpr unsigned kMaxValidityDays = 36500;

struct CaOptions {
  std::string cn = "ctrl-exec CA"; // [\w\s.-]+ as the original requires
  unsigned days = 3650;
  int64_t issued_at = 0; // unix seconds; 0 = now (tests pass fixed instants)
};

// A self-signed X.509 v3 CA certificate (PEM) for `ca_key_pem`: subject and issuer
// `/CN=<cn>`, SHA-256, basicConstraints critical CA:TRUE, keyUsage critical
// keyCertSign|cRLSign, subject and authority key identifiers, a new_serial() serial.
Result<std::string> create_ca_cert(std::string_view ca_key_pem, const CaOptions& opts = {});

struct IssueOptions {
  std::string serial = {}; // hex, 1..20 bytes, non-zero; use new_serial()
  unsigned days = 825;     // 825 at pairing; cert_days at renewal
  // Renewal binds the CSR's CN to the registry name (§6.3); pairing does not.
  std::optional<std::string> expected_cn = std::nullopt;
  int64_t issued_at = 0; // unix seconds; 0 = now
};

// Validate the CSR (validate_csr() rules) and issue a certificate (PEM) for it, signed by the CA.
// The certificate has subject `/CN=<CSR CN>` only, the CA's subject as issuer, SHA-256, and
// X.509 v3 extensions basicConstraints CA:FALSE, subject and authority key identifiers. The
// original issues v1 certificates without extensions; OpenSSL and mbedTLS peers accept both,
// see docs/COMPATIBILITY.md. The CA key must match the CA certificate.
Result<std::string> sign_csr(std::string_view csr_pem, std::string_view ca_cert_pem,
                             std::string_view ca_key_pem, const IssueOptions& opts);

} // namespace cx::pki
