// CA certificate creation and CSR signing; see ca.hpp.
#include "pki/ca.hpp"

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include <vector>

#include "base/strings.hpp"
#include "base/time.hpp"
#include "pki/csr_internal.hpp"
#include "pki/mbed_util.hpp"
#include "pki/serial.hpp"
#include "tls/mbed.hpp"

namespace cx::pki {

using detail::Crt;
using detail::CrtWriter;
using detail::Csr;
using detail::Mpi;
using detail::Pk;

namespace {

constexpr std::string_view kOidCn{MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN)};

// The original's rule for the CA's CN: [\w\s.-]+ (ASCII).
bool is_ca_common_name(std::string_view cn) {
  if (cn.empty()) return false;
  for (char c : cn)
    if (!(is_word_char(c) || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
          c == '\v' || c == '.' || c == '-'))
      return false;
  return true;
}

Status check_days(unsigned days) {
  if (days == 0 || days > kMaxValidityDays)
    return error("invalid validity of " + std::to_string(days) + " days (1 to " +
                 std::to_string(kMaxValidityDays) + ")");
  return ok_status();
}

Status set_serial(const CrtWriter& writer, std::string_view hex) {
  std::string digits(hex);
  size_t first = digits.find_first_not_of('0');
  if (!is_hex(digits) || first == digits.npos || digits.size() - first > 40)
    return error("invalid certificate serial '" + digits +
                 "': expected non-zero hex of at most 20 bytes");
  Mpi serial;
  if (mbedtls_mpi_read_string(serial.get(), 16, digits.c_str()) != 0)
    return error("invalid certificate serial '" + digits + "'");
  int rc = mbedtls_x509write_crt_set_serial(writer.get(), serial.get());
  if (rc != 0) return error("cannot set the serial: " + tls::mbed_error(rc));
  return ok_status();
}

Status set_validity(const CrtWriter& writer, int64_t issued_at, unsigned days) {
  const int64_t at = issued_at != 0 ? issued_at : unix_now();
  const std::string from = detail::x509_validity_time(at - kBackdateSeconds);
  const std::string to = detail::x509_validity_time(at + int64_t{days} * 86400);
  int rc = mbedtls_x509write_crt_set_validity(writer.get(), from.c_str(), to.c_str());
  if (rc != 0) return error("cannot set the validity dates: " + tls::mbed_error(rc));
  return ok_status();
}

// authorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }, holding the
// issuer's own subjectKeyIdentifier. Copying it (rather than hashing the issuer key, as
// mbedTLS would) keeps the link intact for a CA whose identifier was made another way;
// OpenSSL refuses an issuer whose SKID differs from the child's AKID.
Status set_authority_key_id(const CrtWriter& writer, const mbedtls_x509_crt* ca) {
  std::vector<unsigned char> skid = detail::subject_key_id(ca);
  int rc = 0;
  if (skid.empty() || skid.size() > 64) {
    rc = mbedtls_x509write_crt_set_authority_key_identifier(writer.get());
  } else {
    std::vector<unsigned char> der;
    der.push_back(MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    der.push_back(static_cast<unsigned char>(skid.size() + 2));
    der.push_back(MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0);
    der.push_back(static_cast<unsigned char>(skid.size()));
    der.insert(der.end(), skid.begin(), skid.end());
    rc = mbedtls_x509write_crt_set_extension(writer.get(), MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER),
                                             0, der.data(), der.size());
  }
  if (rc != 0) return error("cannot set the authority key identifier: " + tls::mbed_error(rc));
  return ok_status();
}

Result<std::string> write_pem(const CrtWriter& writer) {
  std::vector<unsigned char> out(16384);
  int rc =
      mbedtls_x509write_crt_pem(writer.get(), out.data(), out.size(), tls::rng, tls::rng_context());
  if (rc != 0) return error("cannot sign the certificate: " + tls::mbed_error(rc));
  return std::string(reinterpret_cast<const char*>(out.data()));
}

} // namespace

Result<std::string> create_ca_cert(std::string_view ca_key_pem, const CaOptions& opts) {
  if (!is_ca_common_name(opts.cn))
    return error("invalid CA common name '" + opts.cn +
                 "': only letters, digits, '_', whitespace, '.' and '-' are allowed");
  CX_TRY(check_days(opts.days));
  Pk key;
  CX_TRY(detail::parse_private_key(key, ca_key_pem));

  CrtWriter writer;
  mbedtls_x509write_crt_set_version(writer.get(), MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(writer.get(), MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(writer.get(), key.get());
  mbedtls_x509write_crt_set_issuer_key(writer.get(), key.get());
  CX_TRY(set_serial(writer, new_serial()));
  CX_TRY(set_validity(writer, opts.issued_at, opts.days));
  CX_TRY(detail::prepend_name(&writer->subject, kOidCn, MBEDTLS_ASN1_UTF8_STRING, opts.cn));
  CX_TRY(detail::prepend_name(&writer->issuer, kOidCn, MBEDTLS_ASN1_UTF8_STRING, opts.cn));

  int rc = mbedtls_x509write_crt_set_basic_constraints(writer.get(), 1, -1); // critical for CAs
  if (rc == 0)
    rc = mbedtls_x509write_crt_set_key_usage(writer.get(), MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                               MBEDTLS_X509_KU_CRL_SIGN);
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_key_identifier(writer.get());
  if (rc == 0) rc = mbedtls_x509write_crt_set_authority_key_identifier(writer.get());
  if (rc != 0) return error("cannot set the CA certificate extensions: " + tls::mbed_error(rc));
  return write_pem(writer);
}

Result<std::string> sign_csr(std::string_view csr_pem, std::string_view ca_cert_pem,
                             std::string_view ca_key_pem, const IssueOptions& opts) {
  Csr csr;
  CX_TRY(detail::parse_and_validate_csr(csr, csr_pem, opts.expected_cn).status());
  CX_TRY(check_days(opts.days));

  Crt ca;
  {
    Status st = detail::parse_first_cert(ca, ca_cert_pem);
    if (!st.ok()) return error("CA certificate: " + st.message());
  }
  Pk ca_key;
  {
    Status st = detail::parse_private_key(ca_key, ca_key_pem);
    if (!st.ok()) return error("CA key: " + st.message());
  }
  CX_ASSIGN_OR_RETURN(auto key_public, detail::public_key_der(ca_key.get()));
  CX_ASSIGN_OR_RETURN(auto ca_public, detail::public_key_der(&ca->pk));
  // Refuse rather than issue certificates that no peer could verify.
  if (key_public != ca_public) return error("the CA key does not match the CA certificate");
  if (ca->version >= 3 && !ca->ca_istrue)
    return error("the CA certificate is not a CA certificate (basicConstraints CA:FALSE)");

  CrtWriter writer;
  mbedtls_x509write_crt_set_version(writer.get(), MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(writer.get(), MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(writer.get(), &csr->pk);
  mbedtls_x509write_crt_set_issuer_key(writer.get(), ca_key.get());
  CX_TRY(set_serial(writer, opts.serial));
  CX_TRY(set_validity(writer, opts.issued_at, opts.days));
  // The issuer name is the CA's subject byte for byte; the subject is the CSR's CN alone,
  // keeping its string type.
  CX_TRY(detail::copy_name(&writer->issuer, &ca->subject));
  const mbedtls_x509_name* cn = detail::csr_cn_attribute(csr.get());
  CX_CHECK(cn != nullptr); // parse_and_validate_csr() refuses a CSR without one
  CX_TRY(detail::prepend_name(
      &writer->subject, kOidCn, cn->val.tag,
      std::string_view(reinterpret_cast<const char*>(cn->val.p), cn->val.len)));

  int rc = mbedtls_x509write_crt_set_basic_constraints(writer.get(), 0, -1);
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_key_identifier(writer.get());
  if (rc != 0) return error("cannot set the certificate extensions: " + tls::mbed_error(rc));
  CX_TRY(set_authority_key_id(writer, ca.get()));
  return write_pem(writer);
}

} // namespace cx::pki
