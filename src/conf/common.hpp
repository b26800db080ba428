// Pieces shared by the config parsers: Perl-compatible line reading and value capture,
// integers and rate-limit triples, and warnings returned as data for the caller to log.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::conf {

// A non-fatal problem found while loading a config: the key (or entry) it concerns and a
// message. conf/ does not log; callers log these (the agent as `config-warn KEY MSG`).
struct ConfigWarning {
  std::string key;
  std::string message;
  bool operator==(const ConfigWarning&) const = default;
};

// key -> value, sorted by key.
using KeyValues = std::map<std::string, std::string, std::less<>>;

// A `limit/window/block` triple: at most `limit` events per `window` seconds, then a block of
// `block` seconds.
struct RateLimit {
  int64_t limit;
  int64_t window;
  int64_t block;
  bool operator==(const RateLimit&) const = default;
};
inline constexpr RateLimit kDefaultVolumeLimit{10, 60, 300};
inline constexpr RateLimit kDefaultProbeLimit{3, 600, 3600};

// Parses `^(\d+)/(\d+)/(\d+)$`; nullopt for anything else.
std::optional<RateLimit> parse_rate_limit(std::string_view s);
std::string format_rate_limit(const RateLimit& r);

// Perl's \s (space, \t, \n, \r, \f, \v).
bool is_perl_space(char c);

// The lines of a file as Perl's `while (<$fh>) { chomp; ... }` sees them: split on '\n', the
// newline removed, no empty line after a final newline. A '\r' stays (the parsers trim it).
std::vector<std::string_view> split_lines(std::string_view text);

// The value that `=\s*(.+?)\s*$` captures from the text after '=': trimmed of whitespace on
// both sides, at least one character. nullopt when nothing follows '='. A tail of only
// whitespace yields its last character, because the regex backtracks to give `.+?` one
// character (so `key = ` sets key to " ", exactly as the original).
std::optional<std::string> capture_value(std::string_view after_eq);

// The value of `key`, or nullptr when the key is absent. Every key a parser reads goes through
// here (read_string and IntReader too), so KeyLog can list them.
const std::string* find_value(const KeyValues& conf, std::string_view key);

// While alive, records on this thread the name of every key find_value is asked for: around
// a parse, the keys that parser knows, from the code that reads them and not from a list kept
// beside it. The man-page test (test/unit/applets/manpage_test.cpp) compares them with the
// keys docs/man/ documents. Logs nest; the innermost records.
class KeyLog {
public:
  KeyLog();
  ~KeyLog();
  KeyLog(const KeyLog&) = delete;
  KeyLog& operator=(const KeyLog&) = delete;
  const std::set<std::string, std::less<>>& keys() const { return keys_; }
  void record(std::string_view key) { keys_.emplace(key); }

private:
  std::set<std::string, std::less<>> keys_;
  KeyLog* outer_;
};

// Sets `out` to the value of `key` when present; otherwise `out` keeps its default.
void read_string(const KeyValues& conf, const char* key, std::string& out);
// The same for a setting that may stay unset; with `empty_is_unset`, an empty value leaves it
// unset too.
void read_string(const KeyValues& conf, const char* key, std::optional<std::string>& out,
                 bool empty_is_unset = false);

// A boolean as the original reads it: true when the value starts with '1', 'y' or 'Y'.
bool starts_with_1_or_y(std::string_view v);

// An integer as written in a config: optional sign, decimal digits, nothing else.
std::optional<int64_t> parse_config_int(std::string_view s);

// Reads integer keys with a range; a present but invalid value is reported as a warning
// naming the key, and the caller's default stays.
class IntReader {
public:
  IntReader(const KeyValues& conf, std::vector<ConfigWarning>& warnings)
      : conf_(conf), warnings_(warnings) {}

  // The value of `key` when present, an integer (parse_config_int) and within [min, max];
  // otherwise nullopt, with a warning when the key is present. `fallback` names in the warning
  // what is used instead.
  std::optional<int64_t> read(const char* key, int64_t min, int64_t max,
                              const std::string& fallback);

  // Sets `out` from `key` when valid; otherwise leaves it (its value is the fallback).
  template <typename T>
  void read_into(const char* key, T& out, int64_t min, int64_t max = INT64_MAX) {
    if (auto v = read(key, min, max, std::to_string(out))) out = static_cast<T>(*v);
  }

private:
  const KeyValues& conf_;
  std::vector<ConfigWarning>& warnings_;
};

// Reads a config file whole. Failure reads "Cannot open config '<path>': <strerror>".
Result<std::string> read_config_file(const std::string& path);

} // namespace cx::conf
