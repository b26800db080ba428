// A directory of JSON records, one file `<name>.json` each: what the registry and the run
// store have in common.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace cx::state {

class RecordDir {
public:
  explicit RecordDir(std::string dir) : dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  // `<dir>/<name>.json`. The name is not checked here: each store checks its own names.
  std::string record_path(std::string_view name) const {
    return dir_ + "/" + std::string(name) + std::string(kSuffix);
  }
  // The record name in a file name of the directory: `name` for `name.json`, "" otherwise.
  static std::string_view record_name(std::string_view file) {
    if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) return {};
    return file.substr(0, file.size() - kSuffix.size());
  }

protected:
  static constexpr std::string_view kSuffix = ".json";

  std::string dir_;
};

} // namespace cx::state
