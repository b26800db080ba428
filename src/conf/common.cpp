// Shared config parsing pieces; see common.hpp.
#include "conf/common.hpp"

#include <fcntl.h>

#include <cerrno>

#include "base/files.hpp"
#include "base/strings.hpp"

namespace cx::conf {

namespace {
// Config files are a few KiB; a bound keeps a mistaken path (a device, a huge log) harmless.
constexpr size_t kMaxConfigBytes = 16u << 20;
} // namespace

std::optional<RateLimit> parse_rate_limit(std::string_view s) {
  auto parts = split(s, '/');
  if (parts.size() != 3) return std::nullopt;
  int64_t v[3];
  for (int i = 0; i < 3; ++i) {
    auto n = parse_uint(parts[i]);
    if (!n || *n > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    v[i] = static_cast<int64_t>(*n);
  }
  return RateLimit{v[0], v[1], v[2]};
}

std::string format_rate_limit(const RateLimit& r) {
  return std::to_string(r.limit) + "/" + std::to_string(r.window) + "/" + std::to_string(r.block);
}

bool is_perl_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::optional<std::string> capture_value(std::string_view after_eq) {
  if (after_eq.empty()) return std::nullopt;
  std::string_view t = after_eq;
  while (!t.empty() && is_perl_space(t.front()))
    t.remove_prefix(1);
  while (!t.empty() && is_perl_space(t.back()))
    t.remove_suffix(1);
  if (t.empty()) return std::string(1, after_eq.back());
  return std::string(t);
}

std::optional<int64_t> parse_config_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  return parse_int(s);
}

std::optional<int64_t> IntReader::read(const char* key, int64_t min, int64_t max,
                                       const std::string& fallback) {
  const std::string* value = find_value(conf_, key);
  if (!value) return std::nullopt;
  if (auto v = parse_config_int(*value); v && *v >= min && *v <= max) return v;
  std::string expected = "an integer";
  if (min != INT64_MIN && max == INT64_MAX) expected += " >= " + std::to_string(min);
  if (min != INT64_MIN && max != INT64_MAX)
    expected += " from " + std::to_string(min) + " to " + std::to_string(max);
  warnings_.push_back(
      {key, "invalid value '" + *value + "' (expected " + expected + "); using " + fallback});
  return std::nullopt;
}

namespace {
thread_local KeyLog* current_key_log = nullptr;
} // namespace

KeyLog::KeyLog() : outer_(current_key_log) {
  current_key_log = this;
}

KeyLog::~KeyLog() {
  current_key_log = outer_;
}

const std::string* find_value(const KeyValues& conf, std::string_view key) {
  if (current_key_log) current_key_log->record(key);
  auto it = conf.find(key);
  return it == conf.end() ? nullptr : &it->second;
}

void read_string(const KeyValues& conf, const char* key, std::string& out) {
  if (const std::string* v = find_value(conf, key)) out = *v;
}

void read_string(const KeyValues& conf, const char* key, std::optional<std::string>& out,
                 bool empty_is_unset) {
  if (const std::string* v = find_value(conf, key); v && !(empty_is_unset && v->empty())) out = *v;
}

bool starts_with_1_or_y(std::string_view v) {
  return !v.empty() && (v.front() == '1' || v.front() == 'y' || v.front() == 'Y');
}

Result<std::string> read_config_file(const std::string& path) {
  auto fail = [&](int err) {
    return error("Cannot open config '" + path + "': " + errno_text(err));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  FdContent content = read_fd(fd, kMaxConfigBytes);
  if (content.too_large) return fail(EFBIG);
  if (content.err != 0) return fail(content.err);
  return std::move(content.data);
}

} // namespace cx::conf
