// Structured log lines, `ACTION=<a> KEY=value ...`, as the original writes them, to syslog
// (facility daemon), to stderr, or to an in-memory capture for tests.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cx::log {

enum class Level { info, warning, err };

using Field = std::pair<std::string, std::string>;
using Fields = std::vector<Field>;

enum class Sink { syslog, stderr_stream, capture };

// One message: `ACTION=<action>`, then the other fields sorted by key (ASCII), single spaces.
// A value containing any whitespace is wrapped in double quotes with no escaping; an empty
// value prints as `KEY=`. A field named TOKEN (any case) is dropped: tokens are never logged.
// A field named ACTION is dropped too (the action is always first); of several fields with the
// same key the last one is kept.
std::string format_line(std::string_view action, const Fields& fields);

// The syslog priority of a level: info 6, warning 4, err 3.
int syslog_priority(Level level);

// The sink init(ident) picks: CTRL_EXEC_LOG=syslog or =stderr decides; unset (or any other
// value) means syslog when the /dev/log socket exists and stderr otherwise.
Sink choose_sink(const char* env_value, bool dev_log_exists);

// Starts logging for an applet, e.g. init("ctrl-exec-agent"), with the sink choose_sink()
// picks from the environment. The original always used syslog; falling back to stderr when
// there is no /dev/log is a deliberate improvement so that containers without a syslog daemon
// still show their logs.
void init(std::string_view ident);
// Starts logging with an explicit sink; syslog is opened with LOG_PID|LOG_NDELAY, LOG_DAEMON.
void init(std::string_view ident, Sink sink);
// Closes syslog if it was open and returns to the state before init: lines go to stderr as
// `<ident>: <msg>` (the ident stays).
void shutdown();

// Writes one line at `level`. Before init the line goes to stderr as `<ident>: <msg>`, with
// the ident "ctrl-exec".
void write(Level level, std::string_view action, const Fields& fields = {});
inline void info(std::string_view action, const Fields& fields = {}) {
  write(Level::info, action, fields);
}
inline void warning(std::string_view action, const Fields& fields = {}) {
  write(Level::warning, action, fields);
}
inline void err(std::string_view action, const Fields& fields = {}) {
  write(Level::err, action, fields);
}

// What the capture sink has recorded since init or the last clear_captured().
struct Record {
  Level level;
  std::string line; // the formatted message, without ident
};
std::vector<Record> captured();
void clear_captured();

} // namespace cx::log
