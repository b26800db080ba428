// Tests for src/base/random.cpp.
#include <catch2/catch.hpp>

#include <set>

#include "base/random.hpp"

TEST_CASE("reqids are 16 lowercase hex and distinct", "[base]") {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    auto id = cx::new_reqid();
    CHECK(id.size() == 16);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  CHECK(seen.size() == 20);
}
