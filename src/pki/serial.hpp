// Certificate serial numbers: the original's canonical form canon() (agent-and-wire §4.2.1),
// OpenSSL's printed form, the serials we issue, and OpenSSL's `ca.serial` file.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::pki {

// canon(s), bit-exact with the original for every input up to kCanonMaxInput bytes:
//   ""            -> ""
//   strip one leading "0x"/"0X", then one leading "serial=" (any case);
//   contains ':'  -> drop colons, lower-case, strip leading zeros before a hex digit;
//   all digits    -> read as DECIMAL, lowercase hex ("255" -> "ff", "10" -> "a");
//   all hex       -> lower-case, leading zeros stripped ("00" -> "0");
//   otherwise     -> Perl Math::BigInt's reading of the string ("xff" -> "ff", "1e+2" -> "64",
//                    "-5" -> "-0x5", "inf" -> "inf"); unparsable -> "nan".
// Decimal and Math::BigInt inputs longer than kCanonMaxInput, or whose value would exceed
// 65536 bits, give "nan" instead of the original's huge number, so that no file line or wire
// value can stall the event loop. A real serial has at most 20 bytes (49 decimal digits), so no
// lookup can tell the difference.
std::string canon_serial(std::string_view s);
inline constexpr size_t kCanonMaxInput = 4096;

// OpenSSL's printed form of a serial is openssl_serial_hex() in base/serial_hex.hpp, below
// tls/ so that both sides print a serial the one way.

// A serial for a certificate we issue: 128 random bits, drawn again until the top hex digit is
// non-zero and the hex contains a letter a-f. Returned as lowercase hex (32 digits, no leading
// zero), on which canon_serial() is the identity, so a Perl agent, which applies canon() once
// or twice and reads all-digit hex as decimal (§4.2.1 QUIRK), stores and matches it unchanged.
std::string new_serial();

// True if canon_serial(hex) == hex for lowercase minimal hex: the property new_serial() keeps.
bool is_canon_fixed_point(std::string_view hex);

// OpenSSL's serial file (`-CAserial ca.serial`): the last issued serial as uppercase hex in
// whole bytes and a newline ("01\n", "0100\n"); OpenSSL refuses an odd number of digits.
// `hex` is any-case hex with or without leading zeros.
Result<std::string> format_ca_serial(std::string_view hex);
// The serial in a ca.serial file's text, as lowercase minimal hex ("0100\n" -> "100").
Result<std::string> parse_ca_serial(std::string_view text);
Result<std::string> read_ca_serial(const std::string& path);
// Atomic replace (like OpenSSL, which writes ca.serial.new and renames it). The rename gives
// the file a new inode, so a flock held on the old one no longer excludes new openers; lock a
// separate file if the lock must outlive the write.
Status write_ca_serial(const std::string& path, std::string_view hex, unsigned mode = 0644);

} // namespace cx::pki
