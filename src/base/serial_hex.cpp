// OpenSSL's serial text; see serial_hex.hpp.
#include "base/serial_hex.hpp"

#include <vector>

#include "base/strings.hpp"

namespace cx {

std::string openssl_serial_hex(const unsigned char* der, size_t len) {
  if (len == 0) return "00";
  std::vector<unsigned char> mag(der, der + len);
  bool negative = (mag[0] & 0x80) != 0;
  if (negative) {
    // Two's complement: the magnitude is the inverted bytes plus one.
    for (auto& b : mag)
      b = static_cast<unsigned char>(~b);
    for (size_t k = mag.size(); k-- > 0;)
      if (++mag[k] != 0) break;
  }
  size_t lead = 0;
  while (lead + 1 < mag.size() && mag[lead] == 0)
    ++lead;
  std::string hex = hex_encode(mag.data() + lead, mag.size() - lead, true);
  return negative ? "-" + hex : hex;
}

} // namespace cx
