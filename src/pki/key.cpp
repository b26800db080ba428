// Key generation and inspection; see key.hpp.
#include "pki/key.hpp"

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>

#include <vector>

#include "pki/mbed_util.hpp"
#include "tls/mbed.hpp"

namespace cx::pki {

using detail::Pk;

Result<KeySpec> parse_key_type(std::string_view text, unsigned rsa_default_bits) {
  KeySpec spec;
  if (text == "ec") return spec;
  spec.type = KeyType::rsa;
  spec.rsa_bits = rsa_default_bits;
  if (text == "rsa") return spec;
  if (text == "rsa:2048" || text == "rsa:3072" || text == "rsa:4096") {
    spec.rsa_bits = static_cast<unsigned>(std::stoul(std::string(text.substr(4))));
    return spec;
  }
  return error("invalid key type '" + std::string(text) +
               "' (use ec, rsa, rsa:2048, rsa:3072 or rsa:4096)");
}

std::string key_type_text(const KeySpec& spec) {
  return spec.type == KeyType::ec ? "ec" : "rsa:" + std::to_string(spec.rsa_bits);
}

Result<std::string> generate_key(const KeySpec& spec) {
  Pk pk;
  const bool rsa = spec.type == KeyType::rsa;
  if (rsa && (spec.rsa_bits < 2048 || spec.rsa_bits > 4096))
    return error("RSA key size " + std::to_string(spec.rsa_bits) +
                 " is not supported (2048 to 4096 bits)");
  int rc = mbedtls_pk_setup(pk.get(),
                            mbedtls_pk_info_from_type(rsa ? MBEDTLS_PK_RSA : MBEDTLS_PK_ECKEY));
  if (rc != 0) return error("cannot set up a key: " + tls::mbed_error(rc));
  if (rsa) {
    rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk.get()), tls::rng, tls::rng_context(), spec.rsa_bits,
                             65537);
  } else {
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk.get()), tls::rng,
                             tls::rng_context());
  }
  if (rc != 0) return error("key generation failed: " + tls::mbed_error(rc));

  std::vector<unsigned char> buf(16384);
  rc = mbedtls_pk_write_key_pem(pk.get(), buf.data(), buf.size());
  if (rc != 0) {
    mbedtls_platform_zeroize(buf.data(), buf.size());
    return error("cannot encode the new key: " + tls::mbed_error(rc));
  }
  std::string pem(reinterpret_cast<const char*>(buf.data()));
  mbedtls_platform_zeroize(buf.data(), buf.size());
  return pem;
}

Result<KeyInfo> key_info(std::string_view key_pem) {
  Pk pk;
  CX_TRY(detail::parse_private_key(pk, key_pem));
  KeyInfo info;
  info.bits = static_cast<unsigned>(mbedtls_pk_get_bitlen(pk.get()));
  switch (mbedtls_pk_get_type(pk.get())) {
  case MBEDTLS_PK_RSA:
    info.type = KeyType::rsa;
    break;
  case MBEDTLS_PK_ECKEY:
  case MBEDTLS_PK_ECKEY_DH: {
    info.type = KeyType::ec;
    const mbedtls_ecp_curve_info* curve =
        mbedtls_ecp_curve_info_from_grp_id(mbedtls_pk_ec(*pk.get())->grp.id);
    info.curve = curve ? curve->name : "unknown";
    break;
  }
  default:
    return error(std::string("unsupported key type ") + mbedtls_pk_get_name(pk.get()));
  }
  return info;
}

} // namespace cx::pki
