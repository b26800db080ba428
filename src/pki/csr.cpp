// CSR creation, validation and the pairing code; see csr.hpp.
#include "pki/csr.hpp"

#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_csr.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "pki/csr_internal.hpp"
#include "tls/mbed.hpp"

namespace cx::pki {

using detail::Csr;
using detail::CsrWriter;
using detail::Pk;

namespace {

constexpr std::string_view kCsrHeader = "-----BEGIN CERTIFICATE REQUEST-----";
constexpr std::string_view kOidCn{MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN)};

bool has_control_char(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

std::string signature_name(const mbedtls_x509_csr* csr) {
  const char* desc = nullptr;
  if (mbedtls_oid_get_sig_alg_desc(&csr->sig_oid, &desc) == 0 && desc != nullptr) return desc;
  return "unknown signature algorithm";
}

Status verify_self_signature(const mbedtls_x509_csr* csr) {
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(csr->sig_md);
  if (md == nullptr) return error("CSR signature uses an unsupported hash");
  unsigned char hash[MBEDTLS_MD_MAX_SIZE];
  int rc = mbedtls_md(md, csr->cri.p, csr->cri.len, hash);
  if (rc == 0)
    rc =
        mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, const_cast<mbedtls_pk_context*>(&csr->pk),
                              csr->sig_md, hash, mbedtls_md_get_size(md), csr->sig.p, csr->sig.len);
  if (rc != 0) return error("CSR self-signature does not verify: " + tls::mbed_error(rc));
  return ok_status();
}

Status check_key(const mbedtls_x509_csr* csr) {
  const mbedtls_pk_context* pk = &csr->pk;
  const std::string what = detail::describe_public_key(pk);
  switch (mbedtls_pk_get_type(pk)) {
  case MBEDTLS_PK_RSA:
    if (mbedtls_pk_get_bitlen(pk) >= 2048) return ok_status();
    return error("CSR public key is too small: " + what + " bits (at least 2048 bits required)");
  case MBEDTLS_PK_ECKEY: {
    mbedtls_ecp_group_id curve = mbedtls_pk_ec(*pk)->grp.id;
    if (curve == MBEDTLS_ECP_DP_SECP256R1 || curve == MBEDTLS_ECP_DP_SECP384R1) return ok_status();
    break;
  }
  default:
    break;
  }
  return error("CSR public key is not accepted: " + what +
               " (accepted: RSA of 2048 bits or more, EC P-256, EC P-384)");
}

Status check_signature_hash(const mbedtls_x509_csr* csr) {
  switch (csr->sig_md) {
  case MBEDTLS_MD_MD2:
  case MBEDTLS_MD_MD4:
  case MBEDTLS_MD_MD5:
  case MBEDTLS_MD_SHA1:
    return error("CSR signature algorithm is too weak: " + signature_name(csr) +
                 " (MD2, MD4, MD5 and SHA-1 are refused)");
  default:
    return ok_status();
  }
}

} // namespace

namespace detail {

const mbedtls_x509_name* csr_cn_attribute(const mbedtls_x509_csr* csr) {
  for (const mbedtls_x509_name* n = &csr->subject; n != nullptr; n = n->next)
    if (n->oid.p != nullptr && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) return n;
  return nullptr;
}

Result<CsrInfo> parse_and_validate_csr(const Csr& csr, std::string_view csr_pem,
                                       std::optional<std::string_view> expected_cn) {
  if (csr_pem.size() > kMaxCsrBytes)
    return error("CSR is too large: " + std::to_string(csr_pem.size()) + " bytes (limit " +
                 std::to_string(kMaxCsrBytes) + ")");
  if (csr_pem.substr(0, kCsrHeader.size()) != kCsrHeader)
    return error("CSR is not a PEM certificate request: it must begin with " +
                 std::string(kCsrHeader));
  std::string buf(csr_pem);
  int rc = mbedtls_x509_csr_parse(csr.get(), reinterpret_cast<const unsigned char*>(buf.c_str()),
                                  buf.size() + 1);
  if (rc != 0) return error("CSR cannot be parsed: " + tls::mbed_error(rc));

  CX_TRY(verify_self_signature(csr.get()));
  CX_TRY(check_key(csr.get()));
  CX_TRY(check_signature_hash(csr.get()));

  CsrInfo info;
  info.subject = name_text(&csr->subject);
  info.key = describe_public_key(&csr->pk);
  info.signature = signature_name(csr.get());
  const mbedtls_x509_name* cn = csr_cn_attribute(csr.get());
  if (cn == nullptr) return error("CSR subject has no CN: '" + info.subject + "'");
  info.cn.assign(reinterpret_cast<const char*>(cn->val.p), cn->val.len);
  if (info.cn.empty() || has_control_char(info.cn))
    return error("CSR subject CN is empty or contains control characters");
  if (expected_cn && info.cn != *expected_cn)
    return error("CSR subject CN '" + info.cn + "' does not match the expected identity '" +
                 std::string(*expected_cn) + "'");
  return info;
}

} // namespace detail

Result<CsrInfo> validate_csr(std::string_view csr_pem,
                             std::optional<std::string_view> expected_cn) {
  Csr csr;
  return detail::parse_and_validate_csr(csr, csr_pem, expected_cn);
}

Result<std::string> create_csr(std::string_view key_pem, std::string_view cn) {
  if (cn.empty() || has_control_char(cn))
    return error("invalid CSR common name: it must be non-empty, without control characters");
  Pk key;
  CX_TRY(detail::parse_private_key(key, key_pem));
  CsrWriter writer;
  mbedtls_x509write_csr_set_key(writer.get(), key.get());
  mbedtls_x509write_csr_set_md_alg(writer.get(), MBEDTLS_MD_SHA256);
  // The name is built as data, not through mbedTLS's "CN=..." string parser, so a CN with
  // commas or equals signs cannot turn into extra attributes.
  CX_TRY(detail::prepend_name(&writer->subject, kOidCn, MBEDTLS_ASN1_UTF8_STRING, cn));
  std::vector<unsigned char> out(8192);
  int rc =
      mbedtls_x509write_csr_pem(writer.get(), out.data(), out.size(), tls::rng, tls::rng_context());
  if (rc != 0) return error("cannot write the CSR: " + tls::mbed_error(rc));
  return std::string(reinterpret_cast<const char*>(out.data()));
}

std::string pairing_code(std::string_view csr_pem) {
  unsigned char digest[32];
  CX_CHECK(mbedtls_sha256_ret(reinterpret_cast<const unsigned char*>(csr_pem.data()),
                              csr_pem.size(), digest, 0) == 0);
  uint32_t head = (uint32_t{digest[0]} << 24) | (uint32_t{digest[1]} << 16) |
                  (uint32_t{digest[2]} << 8) | uint32_t{digest[3]};
  char code[8];
  std::snprintf(code, sizeof code, "%06u", static_cast<unsigned>(head % 1000000u));
  return code;
}

} // namespace cx::pki
