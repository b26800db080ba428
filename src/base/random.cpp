// Random ids; see random.hpp.
#include "base/random.hpp"

#include <sys/random.h>

#include <cerrno>

#include "base/status.hpp"
#include "base/strings.hpp"

namespace cx {

void random_bytes(void* out, size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      CX_CHECK(!"getrandom failed");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

std::string random_hex(size_t nbytes) {
  std::string raw(nbytes, '\0');
  random_bytes(raw.data(), nbytes);
  return hex_encode(raw.data(), raw.size());
}

} // namespace cx
