// The flat dispatcher config parser; see flat.hpp.
#include "conf/flat.hpp"

#include "base/strings.hpp"

namespace cx::conf {

FlatConfig parse_flat(std::string_view text) {
  FlatConfig conf;
  for (std::string_view line : split_lines(text)) {
    if (line.empty() || is_perl_space(line.front()) || line.front() == '#') continue;
    // The line starts with a non-space, so `^\s*(\w+)` means a word at column 0.
    size_t i = 0;
    while (i < line.size() && is_word_char(line[i]))
      ++i;
    if (i == 0) continue;
    size_t key_end = i;
    while (i < line.size() && is_perl_space(line[i]))
      ++i;
    if (i == line.size() || line[i] != '=') continue;
    auto value = capture_value(line.substr(i + 1));
    if (!value) continue;
    conf.insert_or_assign(std::string(line.substr(0, key_end)), std::move(*value));
  }
  return conf;
}

Result<FlatConfig> load_flat(const std::string& path) {
  CX_ASSIGN_OR_RETURN(std::string text, read_config_file(path));
  return parse_flat(text);
}

Result<FlatConfig> load_flat_required(const std::string& path) {
  CX_ASSIGN_OR_RETURN(FlatConfig conf, load_flat(path));
  CX_TRY(check_required_tls_keys(conf, path));
  return conf;
}

Status check_required_tls_keys(const FlatConfig& conf, const std::string& path) {
  for (const char* k : {"cert", "key", "ca"}) {
    auto it = conf.find(k);
    // Perl truth: "" and "0" are false. The parser never yields "", but a map built by hand
    // might.
    if (it == conf.end() || it->second.empty() || it->second == "0")
      return error(std::string("Missing '") + k + "' in " + path);
  }
  return {};
}

} // namespace cx::conf
