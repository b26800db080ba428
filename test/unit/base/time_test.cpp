// Tests for src/base/time.cpp.
#include <catch2/catch.hpp>

#include "base/time.hpp"

using namespace cx;

TEST_CASE("ISO-8601 and OpenSSL time forms", "[base]") {
  struct Row {
    int64_t t;
    const char* iso;
    const char* ossl;
  };
  const Row rows[] = {
      {0, "1970-01-01T00:00:00Z", "Jan  1 00:00:00 1970 GMT"},
      {1844008080, "2028-06-07T16:28:00Z", "Jun  7 16:28:00 2028 GMT"},
      {1866860247, "2029-02-27T04:17:27Z", "Feb 27 04:17:27 2029 GMT"},
      {951782400, "2000-02-29T00:00:00Z", "Feb 29 00:00:00 2000 GMT"},
  };
  for (const auto& r : rows) {
    CHECK(iso8601_utc(r.t) == r.iso);
    CHECK(openssl_time(r.t) == r.ossl);
    CHECK(parse_iso8601_utc(r.iso) == r.t);
    CHECK(parse_openssl_time(r.ossl) == r.t);
  }
  CHECK(parse_openssl_time("Jun 7 16:28:00 2028 GMT") == 1844008080);
  CHECK_FALSE(parse_openssl_time("unknown"));
  CHECK_FALSE(parse_openssl_time("Foo  7 16:28:00 2028 GMT"));
  CHECK_FALSE(parse_openssl_time("Jun  7 16:28 2028 GMT"));
  CHECK_FALSE(parse_iso8601_utc("2028-06-07 16:28:00"));
}
