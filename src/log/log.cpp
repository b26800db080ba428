// Structured logging; see log.hpp.
#include "log/log.hpp"

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/strings.hpp"

namespace cx::log {

namespace {

// Perl's \s: the quoting test of the original.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// A control character (a line break above all) would let a value from a request or a config
// forge a second log line on any sink: each becomes '?', in every part of every line.
void append_printable(std::string& out, std::string_view s) {
  for (char c : s)
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
}

struct State {
  std::mutex mu;
  bool initialised = false;
  Sink sink = Sink::stderr_stream;
  // openlog() keeps the pointer it is given, so the ident must outlive the syslog session.
  std::string ident = "ctrl-exec";
  bool syslog_open = false;
  std::vector<Record> records;
};

State& state() {
  static State s;
  return s;
}

void write_stderr(const std::string& ident, const std::string& line) {
  // One write(2) per line, so lines from concurrent processes do not interleave.
  std::string out = ident + ": " + line + "\n";
  const char* p = out.data();
  size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void close_syslog_locked(State& s) {
  if (s.syslog_open) {
    ::closelog();
    s.syslog_open = false;
  }
}

} // namespace

std::string format_line(std::string_view action, const Fields& fields) {
  std::vector<const Field*> kept;
  kept.reserve(fields.size());
  for (const auto& f : fields) {
    std::string upper = to_upper(f.first);
    if (upper == "TOKEN" || f.first == "ACTION") continue;
    kept.push_back(&f);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [](const Field* a, const Field* b) { return a->first < b->first; });
  std::string out = "ACTION=";
  append_printable(out, action);
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i + 1 < kept.size() && kept[i]->first == kept[i + 1]->first) continue;
    out += ' ';
    append_printable(out, kept[i]->first);
    out += '=';
    // Quoted when the value (made printable) has white space, as the original quotes it.
    std::string v;
    append_printable(v, kept[i]->second);
    bool quote = std::any_of(v.begin(), v.end(), is_space);
    if (quote) out += '"';
    out += v;
    if (quote) out += '"';
  }
  return out;
}

int syslog_priority(Level level) {
  switch (level) {
  case Level::warning:
    return LOG_WARNING;
  case Level::err:
    return LOG_ERR;
  case Level::info:
    break;
  }
  return LOG_INFO;
}

Sink choose_sink(const char* env_value, bool dev_log_exists) {
  if (env_value && std::strcmp(env_value, "syslog") == 0) return Sink::syslog;
  if (env_value && std::strcmp(env_value, "stderr") == 0) return Sink::stderr_stream;
  return dev_log_exists ? Sink::syslog : Sink::stderr_stream;
}

void init(std::string_view ident) {
  struct stat st;
  bool dev_log = ::stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
  init(ident, choose_sink(std::getenv("CTRL_EXEC_LOG"), dev_log));
}

void init(std::string_view ident, Sink sink) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  close_syslog_locked(s);
  s.ident = std::string(ident);
  s.sink = sink;
  s.initialised = true;
  s.records.clear();
  if (sink == Sink::syslog) {
    ::openlog(s.ident.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
    s.syslog_open = true;
  }
}

void shutdown() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  close_syslog_locked(s);
  s.initialised = false;
  s.sink = Sink::stderr_stream;
}

void write(Level level, std::string_view action, const Fields& fields) {
  std::string line = format_line(action, fields);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialised) {
    write_stderr(s.ident, line);
    return;
  }
  switch (s.sink) {
  case Sink::syslog:
    ::syslog(syslog_priority(level), "%s", line.c_str());
    break;
  case Sink::stderr_stream:
    write_stderr(s.ident, line);
    break;
  case Sink::capture:
    s.records.push_back({level, std::move(line)});
    break;
  }
}

std::vector<Record> captured() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.records;
}

void clear_captured() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.records.clear();
}

} // namespace cx::log
