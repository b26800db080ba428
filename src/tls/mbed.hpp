// Process-wide mbedTLS helpers shared by tls/ and pki/: one lazily seeded CTR-DRBG and
// readable error text. Seeding happens on first use, never at startup.
#pragma once

#include <cstddef>
#include <string>

namespace cx::tls {

// The f_rng/p_rng pair to hand to mbedTLS functions: mbedtls_xxx(..., rng, rng_context()).
int rng(void* ctx, unsigned char* out, size_t len);
void* rng_context();

// "<mbedTLS description> (-0xNNNN)".
std::string mbed_error(int code);

} // namespace cx::tls
