// Random bytes and ids from the kernel (getrandom). There is no PRNG fallback: a failure aborts.
#pragma once

#include <cstddef>
#include <string>

namespace cx {

void random_bytes(void* out, size_t n);
// 2*nbytes lowercase hex characters; reqids use 8 bytes (16 hex).
std::string random_hex(size_t nbytes);
inline std::string new_reqid() {
  return random_hex(8);
}

} // namespace cx
