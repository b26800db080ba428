// Internal to src/pki: RAII owners for the mbedTLS contexts pki uses, and the small parsing and
// encoding helpers shared by its files. Nothing outside src/pki includes this header.
#pragma once

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::pki::detail {

// Owns one mbedTLS context: init in the constructor, free in the destructor (mbedTLS's own
// contract). The context lives on the heap so that moving the owner never moves the C struct,
// whose internals mbedTLS may point into. A moved-from owner holds nothing and frees nothing.
template <typename T, void (*Init)(T*), void (*Free)(T*)> class Handle {
public:
  Handle() : ctx_(std::make_unique<T>()) { Init(ctx_.get()); }
  ~Handle() { reset(); }
  Handle(Handle&&) noexcept = default;
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      ctx_ = std::move(other.ctx_);
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  T* get() const { return ctx_.get(); }
  T* operator->() const { return ctx_.get(); }

private:
  void reset() {
    if (ctx_) Free(ctx_.get());
    ctx_.reset();
  }
  std::unique_ptr<T> ctx_;
};

using Pk = Handle<mbedtls_pk_context, mbedtls_pk_init, mbedtls_pk_free>;
using Crt = Handle<mbedtls_x509_crt, mbedtls_x509_crt_init, mbedtls_x509_crt_free>;
using Csr = Handle<mbedtls_x509_csr, mbedtls_x509_csr_init, mbedtls_x509_csr_free>;
using CrtWriter =
    Handle<mbedtls_x509write_cert, mbedtls_x509write_crt_init, mbedtls_x509write_crt_free>;
using CsrWriter =
    Handle<mbedtls_x509write_csr, mbedtls_x509write_csr_init, mbedtls_x509write_csr_free>;
using Mpi = Handle<mbedtls_mpi, mbedtls_mpi_init, mbedtls_mpi_free>;

// A private key in PEM or DER (PKCS#8, SEC1 or PKCS#1, unencrypted).
Status parse_private_key(const Pk& pk, std::string_view pem);
// The first certificate of a PEM bundle (or one DER certificate). Only that one is parsed, so a
// bad second block cannot change which certificate the caller sees.
Status parse_first_cert(const Crt& crt, std::string_view pem_or_der);
// Every certificate of a PEM bundle: a trust list, as `openssl verify -CAfile` reads one.
Status parse_cert_bundle(const Crt& crt, std::string_view pem);

// The DER SubjectPublicKeyInfo of a key, for equality tests.
Result<std::vector<unsigned char>> public_key_der(mbedtls_pk_context* pk);
// Key type, size and curve as one phrase for messages: "RSA 2048", "EC secp256r1".
std::string describe_public_key(const mbedtls_pk_context* pk);

// The value of the first attribute `oid` (e.g. the CN) of a parsed name, raw bytes.
std::string name_attribute(const mbedtls_x509_name* name, std::string_view oid);
// "CN=foo, O=bar" as mbedTLS prints it.
std::string name_text(const mbedtls_x509_name* name);

// Append one RDN to a name list being built for an x509write context. The writer emits the list
// from its tail, so callers add the most specific attribute (the CN) last.
Status prepend_name(mbedtls_asn1_named_data** head, std::string_view oid, int string_tag,
                    std::string_view value);
// A copy of a parsed name in writer order, keeping each value's string type, so an issuer name
// written from it is byte-identical to the CA's subject (chain building compares them).
Status copy_name(mbedtls_asn1_named_data** head, const mbedtls_x509_name* name);

// The keyIdentifier of a certificate's subjectKeyIdentifier extension, empty if it has none.
std::vector<unsigned char> subject_key_id(const mbedtls_x509_crt* crt);

// "YYYYMMDDhhmmss" in UTC, the form mbedtls_x509write_crt_set_validity takes.
std::string x509_validity_time(int64_t unix_seconds);
int64_t x509_time_to_unix(const mbedtls_x509_time& t);

} // namespace cx::pki::detail
