// mbedTLS DRBG and error text; see mbed.hpp.
#include "tls/mbed.hpp"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdio>

#include "base/status.hpp"

namespace cx::tls {

namespace {

// The DRBG's seed (and reseeds) straight from the kernel's CSPRNG. mbedtls_entropy_init would
// also poll Debian's HAVEGE source, about 1.1 million instructions at every start of a CLI
// process, for nothing getrandom(2) does not already give.
int kernel_entropy(void*, unsigned char* out, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::getrandom(out + got, len - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
    }
    got += static_cast<size_t>(n);
  }
  return 0;
}

struct Drbg {
  mbedtls_ctr_drbg_context ctr;
  Drbg() {
    mbedtls_ctr_drbg_init(&ctr);
    static const unsigned char personal[] = "ctrl-exec";
    int rc = mbedtls_ctr_drbg_seed(&ctr, kernel_entropy, nullptr, personal, sizeof personal - 1);
    // Without a seeded DRBG no key, nonce or handshake can be made safely.
    CX_CHECK(rc == 0);
  }
};

Drbg& drbg() {
  static Drbg instance; // one per process; the event loop is single-threaded
  return instance;
}
} // namespace

void* rng_context() {
  return &drbg().ctr;
}

int rng(void* ctx, unsigned char* out, size_t len) {
  return mbedtls_ctr_drbg_random(ctx, out, len);
}

std::string mbed_error(int code) {
  char buf[200];
  mbedtls_strerror(code, buf, sizeof buf);
  char hex[16];
  std::snprintf(hex, sizeof hex, " (-0x%04X)", static_cast<unsigned>(-code));
  return std::string(buf) + hex;
}

} // namespace cx::tls
