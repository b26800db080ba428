// Time formats used on disk and on the wire: ISO-8601 UTC and OpenSSL's notAfter text form.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace cx {

int64_t unix_now();
// Monotonic milliseconds, for round-trip times and deadlines.
uint64_t monotonic_ms();

// "2026-11-25T04:17:27Z"
std::string iso8601_utc(int64_t unix_seconds);
std::optional<int64_t> parse_iso8601_utc(std::string_view s);
// Wall-clock milliseconds since the epoch, and their ISO-8601 form with milliseconds
// ("2026-12-06T11:22:33.456Z"): for log lines whose spacing is measured.
int64_t unix_now_ms();
std::string iso8601_utc_ms(int64_t unix_ms);

// OpenSSL's notAfter form, day padded with a space: "Jun  7 16:28:00 2028 GMT".
std::string openssl_time(int64_t unix_seconds);
// Parses "<Mon> <D> <HH>:<MM>:<SS> <YYYY> GMT" (any run of spaces) as UTC.
std::optional<int64_t> parse_openssl_time(std::string_view s);

// timegm() without the locale and TZ dependence of the C library.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
int64_t utc_to_unix(int year, int month, int day, int hour, int minute, int second);

} // namespace cx
