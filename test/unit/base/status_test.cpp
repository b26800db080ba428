// Tests for src/base/status.hpp (tag [base]): an error's kind travels with its message through
// Status, Result<T> and the propagation macros.
#include <catch2/catch.hpp>

#include <iterator>
#include <set>
#include <string>

#include "base/status.hpp"

using namespace cx;

namespace {
Status fails_with(ErrorKind kind) {
  return error(kind, "it failed");
}
Status propagates(ErrorKind kind) {
  CX_TRY(fails_with(kind));
  return {};
}
Result<int> number(bool good) {
  if (!good) return error(ErrorKind::timeout, "too slow");
  return 7;
}
Result<int> twice(bool good) {
  CX_ASSIGN_OR_RETURN(int n, number(good));
  return 2 * n;
}
} // namespace

TEST_CASE("status: success has kind none, error(message) kind other", "[base]") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.kind() == ErrorKind::none);
  CHECK(ok.message().empty());
  Status plain = error("something");
  CHECK_FALSE(plain.ok());
  CHECK(plain.kind() == ErrorKind::other);
  CHECK(plain.message() == "something");
}

TEST_CASE("status: the kind survives copies, CX_TRY and Result<T>", "[base]") {
  for (ErrorKind k : kErrorKinds) {
    if (k == ErrorKind::none) continue;
    INFO(kind_name(k));
    Status st = propagates(k);
    CHECK(st.kind() == k);
    CHECK(st.message() == "it failed");
    Result<int> r = Status(st);
    CHECK(r.kind() == k);
    CHECK(r.status().kind() == k);
  }
  CHECK(twice(true).kind() == ErrorKind::none);
  CHECK(*twice(true) == 14);
  CHECK(twice(false).kind() == ErrorKind::timeout);
  CHECK(twice(false).message() == "too slow");
}

TEST_CASE("status: every kind, in the enum's order, has its own name", "[base]") {
  std::set<std::string_view> names;
  for (size_t i = 0; i < std::size(kErrorKinds); ++i) {
    CHECK(static_cast<size_t>(kErrorKinds[i]) == i);
    names.insert(kind_name(kErrorKinds[i]));
  }
  CHECK(names.size() == std::size(kErrorKinds));
  CHECK(kind_name(ErrorKind::read_timeout) == "read_timeout");
  CHECK(kind_name(ErrorKind::none) == "none");
  CHECK(kind_name(ErrorKind::config) == "config");
  CHECK(kind_name(ErrorKind::http_status) == "http_status");
}
