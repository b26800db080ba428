// Internal helpers of src/pki: PEM/DER loading, names, key identifiers and time conversion.
#include "pki/mbed_util.hpp"

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "base/time.hpp"
#include "tls/mbed.hpp"

namespace cx::pki::detail {

namespace {

bool has_pem_armour(std::string_view text) {
  return text.find("-----BEGIN ") != text.npos;
}

// mbedTLS treats its input as PEM only when the buffer ends in a NUL that is counted in the
// length, and as DER otherwise.
size_t mbed_length(const std::string& buf, bool pem) {
  return pem ? buf.size() + 1 : buf.size();
}

} // namespace

Status parse_private_key(const Pk& pk, std::string_view pem) {
  std::string buf(pem);
  int rc = mbedtls_pk_parse_key(pk.get(), reinterpret_cast<const unsigned char*>(buf.c_str()),
                                mbed_length(buf, has_pem_armour(buf)), nullptr, 0);
  mbedtls_platform_zeroize(buf.data(), buf.size()); // our copy held key material
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
    return error("the private key is encrypted; ctrl-exec needs an unencrypted key");
  if (rc != 0) return error("cannot parse the private key: " + tls::mbed_error(rc));
  return ok_status();
}

Status parse_first_cert(const Crt& crt, std::string_view text) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  if (!has_pem_armour(text)) {
    int rc = mbedtls_x509_crt_parse_der(
        crt.get(), reinterpret_cast<const unsigned char*>(text.data()), text.size());
    if (rc != 0) return error("cannot parse the certificate: " + tls::mbed_error(rc));
    return ok_status();
  }
  size_t begin = text.find(kBegin);
  if (begin == text.npos)
    return error("no certificate found (expected " + std::string(kBegin) + ")");
  size_t end = text.find(kEnd, begin);
  if (end == text.npos) return error("the certificate PEM block has no END line");
  std::string block(text.substr(begin, end + kEnd.size() - begin));
  block += '\n';
  int rc = mbedtls_x509_crt_parse(crt.get(), reinterpret_cast<const unsigned char*>(block.c_str()),
                                  block.size() + 1);
  if (rc != 0) return error("cannot parse the certificate: " + tls::mbed_error(rc));
  return ok_status();
}

Status parse_cert_bundle(const Crt& crt, std::string_view pem) {
  std::string buf(pem);
  int rc = mbedtls_x509_crt_parse(crt.get(), reinterpret_cast<const unsigned char*>(buf.c_str()),
                                  mbed_length(buf, has_pem_armour(buf)));
  if (rc < 0) return error("cannot parse the CA certificates: " + tls::mbed_error(rc));
  // A partly readable trust file is refused rather than silently trusted in part.
  if (rc > 0) return error("cannot parse " + std::to_string(rc) + " of the CA certificates");
  return ok_status();
}

Result<std::vector<unsigned char>> public_key_der(mbedtls_pk_context* pk) {
  // Large enough for an RSA-8192 SubjectPublicKeyInfo.
  std::vector<unsigned char> buf(2048);
  int n = mbedtls_pk_write_pubkey_der(pk, buf.data(), buf.size());
  if (n < 0) return error("cannot encode the public key: " + tls::mbed_error(n));
  // mbedTLS writes DER backwards, at the end of the buffer.
  return std::vector<unsigned char>(buf.end() - n, buf.end());
}

std::string describe_public_key(const mbedtls_pk_context* pk) {
  switch (mbedtls_pk_get_type(pk)) {
  case MBEDTLS_PK_RSA:
    return "RSA " + std::to_string(mbedtls_pk_get_bitlen(pk));
  case MBEDTLS_PK_ECKEY:
  case MBEDTLS_PK_ECKEY_DH:
  case MBEDTLS_PK_ECDSA: {
    const mbedtls_ecp_curve_info* info =
        mbedtls_ecp_curve_info_from_grp_id(mbedtls_pk_ec(*pk)->grp.id);
    return std::string("EC ") + (info ? info->name : "unknown-curve");
  }
  default:
    return std::string(mbedtls_pk_get_name(pk)) + " " + std::to_string(mbedtls_pk_get_bitlen(pk));
  }
}

std::string name_attribute(const mbedtls_x509_name* name, std::string_view oid) {
  for (const mbedtls_x509_name* n = name; n != nullptr; n = n->next) {
    if (n->oid.p != nullptr && n->oid.len == oid.size() &&
        std::memcmp(n->oid.p, oid.data(), oid.size()) == 0)
      return std::string(reinterpret_cast<const char*>(n->val.p), n->val.len);
  }
  return {};
}

std::string name_text(const mbedtls_x509_name* name) {
  char buf[1024];
  int n = mbedtls_x509_dn_gets(buf, sizeof buf, name);
  return n < 0 ? std::string("(unprintable name)") : std::string(buf, static_cast<size_t>(n));
}

Status prepend_name(mbedtls_asn1_named_data** head, std::string_view oid, int string_tag,
                    std::string_view value) {
  // Nodes are allocated the way mbedTLS allocates them, because the writer context frees the
  // list with mbedtls_asn1_free_named_data_list().
  auto* node =
      static_cast<mbedtls_asn1_named_data*>(mbedtls_calloc(1, sizeof(mbedtls_asn1_named_data)));
  if (node == nullptr) return error("out of memory building a certificate name");
  node->oid.p = static_cast<unsigned char*>(mbedtls_calloc(1, std::max<size_t>(oid.size(), 1)));
  node->val.p = static_cast<unsigned char*>(mbedtls_calloc(1, std::max<size_t>(value.size(), 1)));
  if (node->oid.p == nullptr || node->val.p == nullptr) {
    mbedtls_free(node->oid.p);
    mbedtls_free(node->val.p);
    mbedtls_free(node);
    return error("out of memory building a certificate name");
  }
  std::memcpy(node->oid.p, oid.data(), oid.size());
  node->oid.len = oid.size();
  node->oid.tag = MBEDTLS_ASN1_OID;
  if (!value.empty()) std::memcpy(node->val.p, value.data(), value.size());
  node->val.len = value.size();
  node->val.tag = string_tag;
  node->next = *head;
  *head = node;
  return ok_status();
}

Status copy_name(mbedtls_asn1_named_data** head, const mbedtls_x509_name* name) {
  // A multi-valued RDN (next_merged) is flattened into single-valued RDNs; our names and the
  // original's (`/CN=...`) never have one.
  for (const mbedtls_x509_name* n = name; n != nullptr; n = n->next) {
    if (n->oid.p == nullptr) continue;
    CX_TRY(prepend_name(head, std::string_view(reinterpret_cast<const char*>(n->oid.p), n->oid.len),
                        n->val.tag,
                        std::string_view(reinterpret_cast<const char*>(n->val.p), n->val.len)));
  }
  return ok_status();
}

std::vector<unsigned char> subject_key_id(const mbedtls_x509_crt* crt) {
  // v3_ext spans `Extensions ::= SEQUENCE OF Extension`, tag included; mbedTLS 2.28 parses the
  // extension but does not keep its value.
  if (crt->v3_ext.p == nullptr || crt->v3_ext.len == 0) return {};
  unsigned char* p = crt->v3_ext.p;
  const unsigned char* end = p + crt->v3_ext.len;
  size_t len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
    return {};
  end = p + len;
  while (p < end) {
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
      return {};
    unsigned char* ext_end = p + len;
    mbedtls_asn1_buf oid{};
    if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0) return {};
    oid.p = p;
    p += oid.len;
    int critical = 0;
    if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN &&
        mbedtls_asn1_get_bool(&p, ext_end, &critical) != 0)
      return {};
    if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) return {};
    if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER, &oid) == 0) {
      // extnValue holds `KeyIdentifier ::= OCTET STRING`.
      size_t id_len = 0;
      if (mbedtls_asn1_get_tag(&p, p + len, &id_len, MBEDTLS_ASN1_OCTET_STRING) != 0) return {};
      return std::vector<unsigned char>(p, p + id_len);
    }
    p = ext_end;
  }
  return {};
}

std::string x509_validity_time(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

int64_t x509_time_to_unix(const mbedtls_x509_time& t) {
  return utc_to_unix(t.year, t.mon, t.day, t.hour, t.min, t.sec);
}

} // namespace cx::pki::detail
