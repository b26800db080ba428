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

// Where lines go. `syslog_when_ready` is the default when no syslog socket exists at init:
// see init(ident) for what it does.
enum class Sink { syslog, stderr_stream, capture, syslog_when_ready };

// One message: `ACTION=<action>`, then the other fields sorted by key (ASCII), single spaces.
// A value containing any whitespace is wrapped in double quotes with no escaping; an empty
// value prints as `KEY=`. A field named TOKEN (any case) is dropped: tokens are never logged.
// A field named ACTION is dropped too (the action is always first); of several fields with the
// same key the last one is kept.
std::string format_line(std::string_view action, const Fields& fields);

// The syslog priority of a level: info 6, warning 4, err 3.
int syslog_priority(Level level);

// The sink init(ident) picks: CTRL_EXEC_LOG=syslog or =stderr decides; unset (or any other
// value) means syslog when the syslog socket exists and syslog_when_ready otherwise.
Sink choose_sink(const char* env_value, bool dev_log_exists);

// How the syslog sinks reach the daemon. Tests point them at a socket of their own.
struct SyslogOptions {
  std::string socket_path = "/dev/log";
  // syslog_when_ready: how long after init lines are held for syslog, and how often the socket
  // is looked for meanwhile (by a background thread, so a quiet program switches too).
  uint64_t hold_ms = 10000;
  uint64_t poll_ms = 100;
  // After the hold: how often, at most, a line being written looks for the socket.
  uint64_t recheck_ms = 1000;
};
// The most lines held for syslog during the hold; later ones go to stderr only.
inline constexpr size_t kMaxHeldLines = 256;

// Starts logging for an applet, e.g. init("ctrl-exec-agent"), with the sink choose_sink()
// picks from the environment. The original always used syslog (lines were lost without a
// daemon); see docs/COMPATIBILITY.md, "Logging without a syslog daemon".
//
// syslog_when_ready is for a syslog daemon that starts beside the program (a container's
// rsyslogd): until the socket appears, every line is written to stderr at once. Lines written
// in the first `hold_ms` are also held (at most kMaxHeldLines); when the socket accepts a
// connection within that time, the held lines are sent to syslog in order, and from then on
// every line goes to syslog only. So each line reaches stderr at most once and syslog at most
// once, and none is lost. After the hold, nothing is held any more: a line being written looks
// for the socket at most once per `recheck_ms`, and from the line that finds it on, lines go to
// syslog only.
void init(std::string_view ident);
// Starts logging with an explicit sink (facility daemon, the ident and the pid in each line).
void init(std::string_view ident, Sink sink, const SyslogOptions& options = {});
// Closes the syslog connection if one is open, ends a hold (dropping what it held) and returns
// to the state before init: lines go to stderr as `<ident>: <msg>` (the ident stays).
void shutdown();

// The sink lines go to right now (syslog_when_ready becomes syslog once the socket is found).
Sink current_sink();

// Writes one line at `level`. Before init the line goes to stderr as `<ident>: <msg>`, with
// the ident "ctrl-exec". A line for syslog that the daemon does not take (its socket is gone or
// refuses, even after one reconnection) is written to stderr instead of being lost.
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
