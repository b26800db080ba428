// Certificate inspection, verification and key matching; see cert.hpp.
#include "pki/cert.hpp"

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include <string>
#include <vector>

#include "base/serial_hex.hpp"
#include "base/strings.hpp"
#include "pki/mbed_util.hpp"
#include "pki/serial.hpp"
#include "tls/mbed.hpp"

namespace cx::pki {

using detail::Crt;
using detail::Pk;

namespace {
constexpr std::string_view kOidCn{MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN)};

// mbedtls_x509_crt_verify_info() writes one line per failure; we want one line in all.
std::string verify_failures(uint32_t flags) {
  char buf[1024];
  int n = mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags);
  if (n <= 0) return "unknown reason";
  std::vector<std::string> lines;
  for (const auto& line : split(std::string_view(buf, static_cast<size_t>(n)), '\n'))
    if (!trim(line).empty()) lines.emplace_back(trim(line));
  return join(lines, "; ");
}
} // namespace

Result<CertInfo> cert_info(std::string_view cert_pem) {
  Crt crt;
  CX_TRY(detail::parse_first_cert(crt, cert_pem));
  CertInfo info;
  info.serial = openssl_serial_hex(crt->serial.p, crt->serial.len);
  info.not_before = detail::x509_time_to_unix(crt->valid_from);
  info.not_after = detail::x509_time_to_unix(crt->valid_to);
  info.subject_cn = detail::name_attribute(&crt->subject, kOidCn);
  info.issuer_cn = detail::name_attribute(&crt->issuer, kOidCn);
  info.version = crt->version;
  info.is_ca = crt->ca_istrue != 0;
  return info;
}

Status verify_cert(std::string_view cert_pem, std::string_view ca_pem) {
  Crt crt;
  CX_TRY(detail::parse_first_cert(crt, cert_pem));
  Crt ca;
  CX_TRY(detail::parse_cert_bundle(ca, ca_pem));
  uint32_t flags = 0;
  int rc = mbedtls_x509_crt_verify(crt.get(), ca.get(), nullptr, nullptr, &flags, nullptr, nullptr);
  if (rc == 0) return ok_status();
  if (flags == 0 || flags == static_cast<uint32_t>(-1))
    return error("certificate verification failed: " + tls::mbed_error(rc));
  return error("certificate verification failed: " + verify_failures(flags));
}

Result<bool> key_matches_cert(std::string_view key_pem, std::string_view cert_pem) {
  Pk key;
  CX_TRY(detail::parse_private_key(key, key_pem));
  Crt crt;
  CX_TRY(detail::parse_first_cert(crt, cert_pem));
  CX_ASSIGN_OR_RETURN(auto key_public, detail::public_key_der(key.get()));
  CX_ASSIGN_OR_RETURN(auto cert_public, detail::public_key_der(&crt->pk));
  if (key_public != cert_public) return false;
  // Same public key: the private half must still belong to it, or a damaged key file would
  // pass here and fail only at the next handshake.
  int rc = mbedtls_pk_check_pair(&crt->pk, key.get());
  if (rc != 0)
    return error("the private key is inconsistent with its own public key: " + tls::mbed_error(rc));
  return true;
}

Status check_renewed_cert(std::string_view cert_pem, std::string_view ca_pem,
                          std::string_view key_pem) {
  Status verified = verify_cert(cert_pem, ca_pem);
  if (!verified.ok()) return error("renewed certificate rejected: " + verified.message());
  auto matches = key_matches_cert(key_pem, cert_pem);
  if (!matches.ok()) return error("renewed certificate rejected: " + matches.message());
  if (!*matches)
    return error("renewed certificate rejected: its public key is not the agent's key");
  return ok_status();
}

} // namespace cx::pki
