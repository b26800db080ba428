// Private keys: generation (ECDSA P-256 by default, RSA on request) and inspection of key PEM
// in any of the unencrypted forms a peer may hold (PKCS#8, SEC1, PKCS#1).
#pragma once

#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::pki {

enum class KeyType { ec, rsa };

struct KeySpec {
  KeyType type = KeyType::ec; // EC keys are always P-256 (ARCHITECTURE.md: handshake cost)
  unsigned rsa_bits = 4096;   // 2048..4096, for type rsa
};

// `--key-type` values: "ec" (P-256), "rsa" (RSA with `rsa_default_bits`), "rsa:<bits>" with
// bits 2048, 3072 or 4096. The error names the value and the accepted forms.
Result<KeySpec> parse_key_type(std::string_view text, unsigned rsa_default_bits);
// The inverse: "ec" or "rsa:<bits>".
std::string key_type_text(const KeySpec& spec);

// A new private key as PEM: SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY" (mbedTLS's
// forms; OpenSSL reads both). RSA-4096 takes seconds.
Result<std::string> generate_key(const KeySpec& spec = {});

struct KeyInfo {
  KeyType type = KeyType::ec;
  unsigned bits = 0; // modulus size for RSA, curve size for EC
  std::string curve; // "secp256r1"; empty for RSA
};

// Parse a private key (PEM or DER); an encrypted key is refused with a message saying so.
Result<KeyInfo> key_info(std::string_view key_pem);

} // namespace cx::pki
