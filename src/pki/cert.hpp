// Reading certificates: serial, dates and names; chain verification against a CA file; and
// whether a private key belongs to a certificate (renewal, agent-and-wire §6.5).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::pki {

struct CertInfo {
  // As `openssl x509 -noout -serial` prints it after "serial=": "02", "0A", "0100".
  std::string serial;
  int64_t not_before = 0; // unix seconds; format with cx::openssl_time()
  int64_t not_after = 0;
  std::string subject_cn; // empty when the name has no CN
  std::string issuer_cn;
  int version = 0;    // 1 for the original's certs (no extensions), 3 for ours
  bool is_ca = false; // basicConstraints CA:TRUE
};

// The first certificate of a PEM bundle, or one DER certificate.
Result<CertInfo> cert_info(std::string_view cert_pem);

// Like `openssl verify -CAfile <ca_pem> <cert_pem>`: the first certificate of cert_pem must
// chain to a certificate of ca_pem (no intermediates are taken from cert_pem) and every
// certificate on the way must be within its validity dates now. mbedTLS's default profile
// applies as well: SHA-2 signatures and RSA of 2048 bits or more.
Status verify_cert(std::string_view cert_pem, std::string_view ca_pem);

// Whether the private key's public half is the certificate's public key (and the private half
// is consistent with it). Unreadable input is an error, not `false`.
Result<bool> key_matches_cert(std::string_view key_pem, std::string_view cert_pem);

// The agent's acceptance test for a renewed certificate (§6.5): it verifies against the CA and
// carries the public key of the agent's existing private key.
Status check_renewed_cert(std::string_view cert_pem, std::string_view ca_pem,
                          std::string_view key_pem);

} // namespace cx::pki
