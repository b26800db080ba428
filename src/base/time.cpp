// Time formats; see time.hpp. Civil-date arithmetic follows Howard Hinnant's algorithms.
#include "base/time.hpp"

#include <cstdio>
#include <time.h>

#include "base/strings.hpp"

namespace cx {

namespace {
const char* const kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct Civil {
  int64_t year;
  unsigned month, day, hour, minute, second;
};

Civil civil_from_unix(int64_t t) {
  int64_t days = t / 86400;
  int64_t rem = t % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned doe = static_cast<unsigned>(days - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2),
          m,
          d,
          static_cast<unsigned>(rem / 3600),
          static_cast<unsigned>(rem % 3600 / 60),
          static_cast<unsigned>(rem % 60)};
}
} // namespace

int64_t unix_now() {
  return static_cast<int64_t>(::time(nullptr));
}

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int64_t utc_to_unix(int year, int month, int day, int hour, int minute, int second) {
  return days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
         hour * 3600 + minute * 60 + second;
}

std::string iso8601_utc(int64_t t) {
  Civil c = civil_from_unix(t);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02uZ", static_cast<long long>(c.year),
                c.month, c.day, c.hour, c.minute, c.second);
  return buf;
}

int64_t unix_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string iso8601_utc_ms(int64_t ms) {
  int64_t s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  std::string out = iso8601_utc(s);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03lldZ", static_cast<long long>(ms - s * 1000));
  out.pop_back(); // the 'Z'
  return out + frac;
}

std::optional<int64_t> parse_iso8601_utc(std::string_view s) {
  int y, mo, d, h, mi, se;
  char z;
  std::string tmp(s);
  if (std::sscanf(tmp.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 ||
      z != 'Z' || tmp.size() != 20)
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  return utc_to_unix(y, mo, d, h, mi, se);
}

std::string openssl_time(int64_t t) {
  Civil c = civil_from_unix(t);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s %2u %02u:%02u:%02u %lld GMT", kMonths[c.month - 1], c.day,
                c.hour, c.minute, c.second, static_cast<long long>(c.year));
  return buf;
}

std::optional<int64_t> parse_openssl_time(std::string_view s) {
  auto f = split_ws(s);
  if (f.size() != 5 || f[4] != "GMT") return std::nullopt;
  int month = 0;
  for (int i = 0; i < 12; ++i)
    if (f[0] == kMonths[i]) month = i + 1;
  if (!month) return std::nullopt;
  auto day = parse_uint(f[1]);
  auto year = parse_uint(f[3]);
  auto hms = split(f[2], ':');
  if (!day || !year || hms.size() != 3 || *day < 1 || *day > 31) return std::nullopt;
  auto h = parse_uint(hms[0]), m = parse_uint(hms[1]), sec = parse_uint(hms[2]);
  if (!h || !m || !sec || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
  return utc_to_unix(static_cast<int>(*year), month, static_cast<int>(*day), static_cast<int>(*h),
                     static_cast<int>(*m), static_cast<int>(*sec));
}

} // namespace cx
