// Small string helpers and the name rules shared by both sides of the wire.
// Character classes are written out by hand: the original's Perl regexes are ASCII-only here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cx {

std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
std::vector<std::string> split(std::string_view s, char sep);
// Split on runs of ASCII whitespace; empty fields are dropped.
std::vector<std::string> split_ws(std::string_view s);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
// printf into a std::string (the original's column layouts are printf formats).
std::string strprintf(const char* format, ...) __attribute__((format(printf, 1, 2)));
bool contains_space(std::string_view s);

bool is_word_char(char c); // [A-Za-z0-9_]
bool is_digits(std::string_view s);
bool is_hex(std::string_view s);

// Parse a non-negative decimal integer with no sign or spaces; nullopt on overflow or junk.
std::optional<uint64_t> parse_uint(std::string_view s);
// Parse a signed decimal integer as Perl would after a numeric check (`^-?\d+$`).
std::optional<int64_t> parse_int(std::string_view s);

// ^[\w-]+$ in ASCII: a script name on 7443 and in the API.
bool is_script_name(std::string_view s);
// ^[A-Za-z0-9][A-Za-z0-9._-]*$ and at most kMaxAgentNameLength bytes: agent registry names and
// pairing hostnames. The name is the registry's file name, `<name>.json`, written through a
// temporary `.<name>.json.tmpXXXXXX`; the bound keeps both within a 255-byte file name, so a
// pairing request is refused up front instead of being queued and then failing at approve
// (the original has no bound; docs/COMPATIBILITY.md).
inline constexpr size_t kMaxAgentNameLength = 239;
bool is_agent_name(std::string_view s);
// ^[A-Za-z0-9_-]+$: request ids accepted in file names.
bool is_reqid(std::string_view s);
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$: a dispatcher id in the trusted map.
bool is_dispatcher_id(std::string_view s);
// Dotted-quad with 1-3 digit octets (`^\d{1,3}(\.\d{1,3}){3}$`), as the original checks it.
bool looks_like_ipv4(std::string_view s);
// The original's loose IPv6 check: `^[0-9A-Fa-f:]+:[0-9A-Fa-f:]+$`.
bool looks_like_ipv6(std::string_view s);

// Replace every character outside [A-Za-z0-9_.-] with '_' (lock and file names).
std::string sanitize_file_component(std::string_view s);

// Copy `s`, replacing invalid UTF-8 sequences with U+FFFD (one per maximal invalid subpart,
// as the WHATWG/Unicode "substitution of maximal subparts" rule). Valid input is unchanged.
std::string sanitize_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);

// Hex of bytes in order, two digits each; `upper` selects the case.
std::string hex_encode(const void* bytes, size_t n, bool upper = false);

// RFC 4648 base64 with the standard alphabet and '=' padding, no line breaks.
std::string base64_encode(std::string_view bytes);
// The strict inverse: nullopt for a length that is not a multiple of 4, a character outside
// the alphabet, or padding anywhere but at the end.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace cx
