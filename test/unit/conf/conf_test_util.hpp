// Helpers for the conf tests: writing fixture files into a test::TempDir, and a printer so
// Catch shows ConfigWarning values.
#pragma once

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

#include "base/files.hpp"
#include "conf/common.hpp"
#include "testutil.hpp"

namespace cx::conf_test {

// Writes `name` under `dir` (parents created) with `mode` and returns its full path.
inline std::string write(const test::TempDir& dir, const std::string& name,
                         const std::string& content, mode_t mode = 0644) {
  std::string p = dir / name;
  REQUIRE(make_dirs(dirname(p)).ok());
  REQUIRE(write_file_atomic(p, content, {.mode = mode, .fsync = false}).ok());
  return p;
}

} // namespace cx::conf_test

namespace Catch {
template <> struct StringMaker<cx::conf::ConfigWarning> {
  static std::string convert(const cx::conf::ConfigWarning& w) {
    return "{" + w.key + ": " + w.message + "}";
  }
};
} // namespace Catch
