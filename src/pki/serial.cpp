// Serial numbers: canon() as the original computes it, OpenSSL's printed form, our serial
// generator and the ca.serial file. See serial.hpp and agent-and-wire §4.2.1.
#include "pki/serial.hpp"

#include <mbedtls/bignum.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/files.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "pki/mbed_util.hpp"

namespace cx::pki {

namespace {

using detail::Mpi;

// Values wider than this are reported as "nan" (see canon_serial in serial.hpp).
constexpr size_t kMaxValueBits = 65536;

bool ieq(char a, char lower) {
  return a == lower || a == lower - 'a' + 'A';
}

std::string mpi_to_hex(const Mpi& x) {
  size_t n = mbedtls_mpi_size(x.get());
  if (n == 0) return "0";
  std::vector<unsigned char> bytes(n);
  CX_CHECK(mbedtls_mpi_write_binary(x.get(), bytes.data(), n) == 0);
  std::string hex = hex_encode(bytes.data(), n);
  return hex[0] == '0' ? hex.substr(1) : hex;
}

// Read digits (no signs, no separators) in `radix`; false if mbedTLS cannot hold the value.
bool mpi_from_digits(const Mpi& x, const std::string& digits, int radix) {
  return mbedtls_mpi_read_string(x.get(), radix, digits.c_str()) == 0;
}

std::string strip_leading_zeros(std::string s) {
  size_t k = s.find_first_not_of('0');
  if (k == s.npos) return "0";
  return s.substr(k);
}

// ---- A model of Perl's Math::BigInt->new(string) (1.9998xx), for canon's last step. ----
//
// new() accepts, around optional whitespace and an optional sign: "inf"/"infinity", "nan",
// hexadecimal ("0x"/"x" prefix), octal ("0o"/"o" prefix, or a leading 0 with a binary
// exponent), binary ("0b"/"b" prefix) and decimal numbers. Digits may be separated by
// underscores; a number may have a fraction and an exponent ("e" for decimal, "p", a power of
// two, for the others). A value that is not an integer is NaN.

bool is_perl_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool is_digit_in(char c, int base) {
  switch (base) {
  case 2:
    return c == '0' || c == '1';
  case 8:
    return c >= '0' && c <= '7';
  case 10:
    return c >= '0' && c <= '9';
  default:
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
}

struct NumberParts {
  bool negative = false;
  std::string int_digits, frac_digits;
  bool exp_negative = false;
  std::string exp_digits;
};

class NumberScanner {
public:
  explicit NumberScanner(std::string_view s) : s_(s) {}

  // One of Math::BigInt's number forms in `base`, covering the whole string.
  std::optional<NumberParts> parse(int base) {
    i_ = 0;
    NumberParts p;
    skip_spaces();
    p.negative = scan_sign();
    scan_prefix(base);
    if (!scan_significand(base, p)) return std::nullopt;
    if (!scan_exponent(base == 10 ? 'e' : 'p', p)) return std::nullopt;
    skip_spaces();
    if (i_ != s_.size()) return std::nullopt;
    return p;
  }

  // `^\s*[+-]?0?<letter>`: the prefix test new() makes before trying a base.
  bool has_prefix(char letter) {
    i_ = 0;
    skip_spaces();
    scan_sign();
    if (at('0') && i_ + 1 < s_.size() && ieq(s_[i_ + 1], letter)) return true;
    return i_ < s_.size() && ieq(s_[i_], letter);
  }

  // `^\s*[+-]?0_*\d`: octal floating point without a prefix ("01p+0").
  bool has_octal_float_lead() {
    i_ = 0;
    skip_spaces();
    scan_sign();
    if (!at('0')) return false;
    ++i_;
    while (at('_'))
      ++i_;
    return i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9';
  }

  // `^\s*([+-]?)inf(inity)?\s*\z` and `^\s*[+-]?nan\s*\z`, case-insensitive.
  bool is_word(std::string_view word, std::string_view longer, bool& negative) {
    i_ = 0;
    skip_spaces();
    negative = scan_sign();
    if (!scan_word(word)) return false;
    size_t mark = i_;
    if (!longer.empty() && !scan_word(longer)) i_ = mark;
    skip_spaces();
    return i_ == s_.size();
  }

private:
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void skip_spaces() {
    while (i_ < s_.size() && is_perl_space(s_[i_]))
      ++i_;
  }
  bool scan_sign() {
    if (at('+')) {
      ++i_;
    } else if (at('-')) {
      ++i_;
      return true;
    }
    return false;
  }
  bool scan_word(std::string_view w) {
    if (s_.size() - i_ < w.size()) return false;
    for (size_t k = 0; k < w.size(); ++k)
      if (!ieq(s_[i_ + k], w[k])) return false;
    i_ += w.size();
    return true;
  }
  // `(?: 0? L _* )?` with L the base letter; only the letter-bearing bases have one.
  void scan_prefix(int base) {
    char letter = base == 16 ? 'x' : base == 8 ? 'o' : base == 2 ? 'b' : 0;
    if (letter == 0) return;
    if (at('0') && i_ + 1 < s_.size() && ieq(s_[i_ + 1], letter)) {
      i_ += 2;
    } else if (i_ < s_.size() && ieq(s_[i_], letter)) {
      i_ += 1;
    } else {
      return;
    }
    while (at('_'))
      ++i_;
  }
  // `D+ (?: _+ D+ )* _*`, which is a digit followed by any run of digits and underscores.
  bool scan_digit_run(int base, std::string& digits) {
    if (i_ >= s_.size() || !is_digit_in(s_[i_], base)) return false;
    while (i_ < s_.size() && (is_digit_in(s_[i_], base) || s_[i_] == '_')) {
      if (s_[i_] != '_') digits += s_[i_];
      ++i_;
    }
    return true;
  }
  // An integer part with an optional fraction (which may be empty: "12."), or a fraction alone.
  bool scan_significand(int base, NumberParts& p) {
    if (scan_digit_run(base, p.int_digits)) {
      if (!at('.')) return true;
      ++i_;
      // `(?: _* D+ (?: _+ D+ )* _* )?`: a run of digits and underscores holding a digit, or
      // nothing; a run of underscores alone cannot be matched by anything that follows.
      bool any_digit = false;
      size_t start = i_;
      while (i_ < s_.size() && (is_digit_in(s_[i_], base) || s_[i_] == '_')) {
        if (s_[i_] != '_') {
          p.frac_digits += s_[i_];
          any_digit = true;
        }
        ++i_;
      }
      return i_ == start || any_digit;
    }
    if (!at('.')) return false;
    ++i_;
    return scan_digit_run(base, p.frac_digits);
  }
  bool scan_exponent(char marker, NumberParts& p) {
    if (i_ >= s_.size() || !ieq(s_[i_], marker)) return true;
    ++i_;
    p.exp_negative = scan_sign();
    return scan_digit_run(10, p.exp_digits);
  }

  std::string_view s_;
  size_t i_ = 0;
};

// A signed exponent as Math::BigInt carries it: a sign and a magnitude, where "-0" is a
// distinct value that only an addition turns into "+0". That matters: "012e-0" is NaN to
// Math::BigInt while "10e-0" and "12e-0" (a fast path) are integers.
struct SignedExp {
  bool negative = false;
  int64_t magnitude = 0; // saturated far above any size we compute
};

// Math::BigInt's _e_add/_sadd: equal signs add; otherwise the larger magnitude wins, and an
// exact cancellation gives +0.
SignedExp add_exp(SignedExp x, SignedExp y) {
  if (x.negative == y.negative) {
    int64_t sum = x.magnitude + y.magnitude;
    return {sum != 0 && x.negative, sum};
  }
  if (x.magnitude == y.magnitude) return {false, 0};
  if (x.magnitude > y.magnitude) return {x.negative, x.magnitude - y.magnitude};
  return {y.negative, y.magnitude - x.magnitude};
}

int64_t saturated_decimal(std::string_view digits) {
  int64_t v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > 1'000'000'000) return 1'000'000'001;
  }
  return v;
}

// The integer a parsed number denotes, following Math::BigInt's steps (_trim_split_parts, then
// _dec_parts_to_lib_parts or _bin_parts_to_lib_parts) so that the sign of a zero exponent
// comes out the same. Printed like as_hex(), lower-cased, without the leading "0x"; "nan" when
// the value is not an integer (or too large, see serial.hpp).
std::string integer_hex(const NumberParts& p, int base) {
  // Trim: leading zeros of the significand, trailing zeros of the fraction.
  std::string int_part =
      p.int_digits.substr(std::min(p.int_digits.find_first_not_of('0'), p.int_digits.size()));
  std::string frac = p.frac_digits;
  frac.erase(std::min(frac.find_last_not_of('0') + 1, frac.size()));
  if (int_part.empty() && frac.empty()) return "0"; // zero, never negative

  const int64_t unit = base == 16 ? 4 : base == 8 ? 3 : 1; // exponent per digit (base 10: 1)
  SignedExp exp{p.exp_negative, saturated_decimal(p.exp_digits)};
  std::string digits = int_part;
  if (!frac.empty()) {
    // Remove the point: the exponent drops by the fraction's length.
    digits += frac;
    exp = add_exp(exp, {true, static_cast<int64_t>(frac.size()) * unit});
    digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size()));
  }
  size_t kept = digits.find_last_not_of('0') + 1; // digits is non-empty and not all zeros
  if (kept < digits.size()) {
    exp = add_exp(exp, {false, static_cast<int64_t>(digits.size() - kept) * unit});
    digits.erase(kept);
  }

  Mpi n;
  if (!mpi_from_digits(n, digits, base)) return "nan";
  const int64_t bits = static_cast<int64_t>(mbedtls_mpi_bitlen(n.get()));
  if (base == 10) {
    if (exp.negative) return "nan"; // the digits end in a non-zero: not an integer
    // 10^k adds log2(10) < 3.33 bits per step.
    if (bits + exp.magnitude * 333 / 100 + 1 > static_cast<int64_t>(kMaxValueBits)) return "nan";
    for (int64_t k = 0; k < exp.magnitude; ++k)
      CX_CHECK(mbedtls_mpi_mul_int(n.get(), n.get(), 10) == 0);
  } else if (!exp.negative) {
    if (bits + exp.magnitude > static_cast<int64_t>(kMaxValueBits)) return "nan";
    CX_CHECK(mbedtls_mpi_shift_l(n.get(), static_cast<size_t>(exp.magnitude)) == 0);
  } else {
    // Math::BigInt computes n * 5^k / 10^k, strips the decimal trailing zeros z of n * 5^k and
    // adds z to the exponent. For k >= 1 that is an integer iff 2^k divides n; for k = 0 (a
    // "-0" exponent) iff n itself ends in a decimal zero.
    if (exp.magnitude == 0) {
      mbedtls_mpi_uint rem = 0;
      CX_CHECK(mbedtls_mpi_mod_int(&rem, n.get(), 10) == 0);
      if (rem != 0) return "nan";
    } else {
      if (static_cast<int64_t>(mbedtls_mpi_lsb(n.get())) < exp.magnitude) return "nan";
      CX_CHECK(mbedtls_mpi_shift_r(n.get(), static_cast<size_t>(exp.magnitude)) == 0);
    }
  }
  // as_hex() gives "-0x1f" for a negative value; canon only removes a leading "0x".
  return p.negative ? "-0x" + mpi_to_hex(n) : mpi_to_hex(n);
}

// new()'s fast path, tried before anything else: `^[+-]?[1-9][0-9]*(\.0*)?([Ee][+-]?0+)?\z`.
// It accepts a "-0" exponent that the general path would turn into NaN.
std::optional<std::string> simple_integer_hex(std::string_view s) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  size_t start = i;
  if (i >= s.size() || s[i] < '1' || s[i] > '9') return std::nullopt;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9')
    ++i;
  std::string digits(s.substr(start, i - start));
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] == '0')
      ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t zeros = i;
    while (i < s.size() && s[i] == '0')
      ++i;
    if (i == zeros) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  Mpi n;
  if (!mpi_from_digits(n, digits, 10)) return "nan";
  return negative ? "-0x" + mpi_to_hex(n) : mpi_to_hex(n);
}

std::string perl_bigint_hex(std::string_view s) {
  if (s.empty()) return "nan";
  if (auto simple = simple_integer_hex(s)) return *simple;
  NumberScanner scan(s);
  bool negative = false;
  if (scan.is_word("inf", "inity", negative)) return negative ? "-inf" : "inf";
  if (scan.is_word("nan", "", negative)) return "nan";
  // new() tries the prefixed bases, then decimal, then prefix-less octal floating point.
  struct Attempt {
    char prefix; // 0: no prefix test
    int base;
  };
  const Attempt attempts[] = {{'x', 16}, {'o', 8}, {'b', 2}, {0, 10}};
  for (const Attempt& a : attempts) {
    if (a.prefix != 0 && !scan.has_prefix(a.prefix)) continue;
    if (auto parts = scan.parse(a.base)) return integer_hex(*parts, a.base);
  }
  if (scan.has_octal_float_lead())
    if (auto parts = scan.parse(8)) return integer_hex(*parts, 8);
  return "nan";
}

std::string decimal_to_hex(const std::string& digits) {
  Mpi n;
  if (!mpi_from_digits(n, digits, 10)) return "nan";
  return mpi_to_hex(n);
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t k = 0; k < prefix.size(); ++k)
    if (!ieq(s[k], prefix[k])) return false;
  return true;
}

} // namespace

std::string canon_serial(std::string_view in) {
  if (in.empty()) return "";
  std::string_view s = in;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (starts_with_ci(s, "serial=")) s.remove_prefix(7);

  if (s.find(':') != s.npos) {
    std::string out;
    for (char c : s)
      if (c != ':') out += c;
    out = to_lower(out);
    // `s/^0+(?=[0-9a-f])//`: the longest run of leading zeros that a hex digit follows.
    size_t zeros = out.find_first_not_of('0');
    if (zeros == out.npos) zeros = out.size();
    if (zeros < out.size() && is_hex(std::string_view(&out[zeros], 1))) {
      out.erase(0, zeros);
    } else if (zeros >= 2) {
      out.erase(0, zeros - 1); // the last zero is the hex digit that follows
    }
    return out;
  }

  std::string lower = to_lower(s);
  if (is_digits(lower)) return lower.size() > kCanonMaxInput ? "nan" : decimal_to_hex(lower);
  if (is_hex(lower)) return strip_leading_zeros(std::move(lower));
  if (lower.size() > kCanonMaxInput) return "nan";
  return perl_bigint_hex(lower);
}

bool is_canon_fixed_point(std::string_view hex) {
  return canon_serial(hex) == hex;
}

std::string new_serial() {
  for (;;) {
    unsigned char bytes[16];
    random_bytes(bytes, sizeof bytes);
    std::string hex = hex_encode(bytes, sizeof bytes);
    if (hex[0] == '0') continue;
    if (hex.find_first_of("abcdef") == hex.npos) continue;
    return hex;
  }
}

Result<std::string> format_ca_serial(std::string_view hex) {
  if (!is_hex(hex)) return error("invalid serial '" + std::string(hex) + "': not hexadecimal");
  std::string digits = to_upper(strip_leading_zeros(std::string(hex)));
  if (digits.size() % 2 != 0) digits.insert(digits.begin(), '0');
  return digits + "\n";
}

Result<std::string> parse_ca_serial(std::string_view text) {
  std::string_view line = text.substr(0, text.find('\n'));
  line = trim(line);
  if (!is_hex(line))
    return error("invalid serial file content '" + std::string(line) + "': expected hex digits");
  return strip_leading_zeros(to_lower(line));
}

Result<std::string> read_ca_serial(const std::string& path) {
  CX_ASSIGN_OR_RETURN(std::string text, read_file(path, 4096));
  auto serial = parse_ca_serial(text);
  if (!serial.ok()) return error(path + ": " + serial.message());
  return serial;
}

Status write_ca_serial(const std::string& path, std::string_view hex, unsigned mode) {
  CX_ASSIGN_OR_RETURN(std::string text, format_ca_serial(hex));
  return write_file_atomic(path, text, {.mode = static_cast<mode_t>(mode)});
}

} // namespace cx::pki
