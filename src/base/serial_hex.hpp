// A certificate serial's printed form, the one that `openssl x509 -serial`, the registry and
// the trusted map use. It lives below tls/ and pki/ so that both print a serial the one way.
#pragma once

#include <cstddef>
#include <string>

namespace cx {

// The serial as `openssl x509 -noout -serial` prints it after "serial=": uppercase hex in whole
// bytes without the DER sign padding ("02", "0A", "0100", "80"), "-" and the magnitude for a
// negative serial ("-05"). `der` is the INTEGER's content octets, as mbedTLS keeps them in
// mbedtls_x509_crt::serial (padding byte included).
std::string openssl_serial_hex(const unsigned char* der, size_t len);

} // namespace cx
