// The sectioned agent.conf parser; see ini.hpp.
#include "conf/ini.hpp"

#include "base/strings.hpp"

namespace cx::conf {

namespace {

struct Header {
  std::string name; // lower-cased
  std::string arg;  // "" when absent
};

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && is_perl_space(s[i]))
    ++i;
  return i;
}

bool is_arg_char(char c) {
  return is_word_char(c) || c == '.' || c == '-';
}

// Matches `^\s*\[\s*(\w+)(\s+([\w.-]+))?\s*\]\s*$`. The regex cannot backtrack into a
// different split here: words and spaces are disjoint classes, so a greedy scan is exact.
std::optional<Header> match_header(std::string_view line) {
  size_t i = skip_space(line, 0);
  if (i == line.size() || line[i] != '[') return std::nullopt;
  i = skip_space(line, i + 1);
  size_t name_start = i;
  while (i < line.size() && is_word_char(line[i]))
    ++i;
  if (i == name_start) return std::nullopt;
  Header h{to_lower(line.substr(name_start, i - name_start)), ""};
  size_t after_space = skip_space(line, i);
  if (after_space > i) {
    size_t arg_start = after_space;
    size_t j = arg_start;
    while (j < line.size() && is_arg_char(line[j]))
      ++j;
    if (j > arg_start) {
      h.arg = std::string(line.substr(arg_start, j - arg_start));
      i = j;
    }
  }
  i = skip_space(line, i);
  if (i == line.size() || line[i] != ']') return std::nullopt;
  if (skip_space(line, i + 1) != line.size()) return std::nullopt;
  return h;
}

// Matches `^\s*(\w+[\w-]*)\s*=\s*(.+?)\s*$`.
std::optional<std::pair<std::string, std::string>> match_key_line(std::string_view line) {
  size_t i = skip_space(line, 0);
  size_t key_start = i;
  if (i == line.size() || !is_word_char(line[i])) return std::nullopt;
  while (i < line.size() && (is_word_char(line[i]) || line[i] == '-'))
    ++i;
  size_t key_end = i;
  i = skip_space(line, i);
  if (i == line.size() || line[i] != '=') return std::nullopt;
  auto value = capture_value(line.substr(i + 1));
  if (!value) return std::nullopt;
  return std::make_pair(std::string(line.substr(key_start, key_end - key_start)),
                        std::move(*value));
}

} // namespace

Result<SectionedConfig> parse_sectioned(std::string_view text, const std::string& path) {
  SectionedConfig conf;
  KeyValues* target = &conf.top; // nullptr inside a section whose keys are ignored
  size_t lineno = 0;
  for (std::string_view line : split_lines(text)) {
    ++lineno;
    size_t first = skip_space(line, 0);
    if (first == line.size() || line[first] == '#') continue;
    auto where = [&] { return "'" + path + "' at line " + std::to_string(lineno) + ": "; };
    if (auto h = match_header(line)) {
      if (h->name == "profile") {
        if (h->arg.empty())
          return error("Profile section without a name in " + where() + std::string(line));
        target = &conf.profiles[h->arg];
      } else if (h->name == "tags") {
        target = &conf.tags;
      } else {
        target = nullptr;
      }
      continue;
    }
    auto kv = match_key_line(line);
    if (!kv) return error("Malformed config line in " + where() + std::string(line));
    if (target) target->insert_or_assign(std::move(kv->first), std::move(kv->second));
  }
  return conf;
}

Result<SectionedConfig> load_sectioned(const std::string& path) {
  CX_ASSIGN_OR_RETURN(std::string text, read_config_file(path));
  return parse_sectioned(text, path);
}

} // namespace cx::conf
