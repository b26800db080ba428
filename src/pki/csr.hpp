// Certificate signing requests: creation (pairing, and /renew from the existing key), the
// signer's validation rules (agent-and-wire §6.3, dispatcher §4.10) and the pairing code (§5.3).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::pki {

// A PEM CSR with subject `/CN=<cn>`, signed with SHA-256 by `key_pem`. The CN must be
// non-empty and free of control characters.
Result<std::string> create_csr(std::string_view key_pem, std::string_view cn);

inline constexpr size_t kMaxCsrBytes = 10240;

struct CsrInfo {
  std::string cn;        // the subject's first CN, raw bytes
  std::string subject;   // the whole subject as mbedTLS prints it ("CN=web-01")
  std::string key;       // "RSA 4096", "EC secp256r1"
  std::string signature; // "RSA with SHA-256", "ECDSA with SHA256"
};

// Accept a CSR only if, in this order (the original's):
//   1. it is at most kMaxCsrBytes bytes;
//   2. it begins with "-----BEGIN CERTIFICATE REQUEST-----";
//   3. it parses and its self-signature verifies (`openssl req -verify`);
//   4. its key is RSA of 2048 bits or more, or EC P-256 or P-384 (the original checks only
//      "at least 2048 bits", which its RSA-only world always met; our agents use P-256);
//   5. its signature hash is not MD2, MD4, MD5 or SHA-1;
//   6. its subject has a CN without control characters (our addition: the signer copies only
//      the CN into the certificate);
//   7. if `expected_cn` is given (renewal), that CN equals it; otherwise the refusal says
//      "... does not match the expected identity ...".
// Each refusal names what is wrong.
Result<CsrInfo> validate_csr(std::string_view csr_pem,
                             std::optional<std::string_view> expected_cn = std::nullopt);

// The 6-digit code both sides show at pairing: the first 4 bytes of SHA-256 over the exact CSR
// PEM bytes (trailing newline included), big-endian, modulo 1000000, zero-padded.
std::string pairing_code(std::string_view csr_pem);

} // namespace cx::pki
