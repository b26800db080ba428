// Structured logging; see log.hpp.
#include "log/log.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <system_error>
#include <thread>

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

using Clock = std::chrono::steady_clock;

bool is_socket(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// The local syslog protocol, as glibc's syslog(3) speaks it (`<PRI>Mmm dd hh:mm:ss
// ident[pid]: msg`, facility daemon), with two differences: the socket path can be chosen (for
// tests), and a send that fails is reported, so that the line can go to stderr instead.
class SyslogClient {
public:
  ~SyslogClient() { close(); }

  // Connects to `path`: a datagram socket, or a stream one if the daemon listens on that.
  bool open(const std::string& path) {
    close();
    for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
      int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
      if (fd < 0) return false;
      struct sockaddr_un addr {};
      addr.sun_family = AF_UNIX;
      if (path.size() >= sizeof addr.sun_path) {
        ::close(fd);
        return false;
      }
      std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
      if (::connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0) {
        fd_ = fd;
        type_ = type;
        path_ = path;
        return true;
      }
      int e = errno;
      ::close(fd);
      if (e != EPROTOTYPE) return false;
    }
    return false;
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends one line, reconnecting once if the daemon went away meanwhile.
  bool send(const std::string& ident, Level level, const std::string& line) {
    std::string msg = frame(ident, level, line);
    if (fd_ >= 0 && send_all(msg)) return true;
    if (path_.empty() || !open(path_)) return false;
    if (send_all(msg)) return true;
    close();
    return false;
  }

private:
  std::string frame(const std::string& ident, Level level, const std::string& line) const {
    char stamp[32] = "";
    time_t now = ::time(nullptr);
    struct tm tm;
    if (::localtime_r(&now, &tm)) std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
    std::string out = "<" + std::to_string(LOG_DAEMON | syslog_priority(level)) + ">" + stamp +
                      " " + ident + "[" + std::to_string(::getpid()) + "]: " + line;
    // A stream socket needs a record terminator, as glibc sends.
    if (type_ == SOCK_STREAM) out.push_back('\0');
    return out;
  }

  bool send_all(const std::string& msg) {
    const char* p = msg.data();
    size_t left = msg.size();
    while (left > 0) {
      ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      left -= static_cast<size_t>(n);
    }
    return true;
  }

  int fd_ = -1;
  int type_ = SOCK_DGRAM;
  std::string path_;
};

struct State {
  std::mutex mu;
  std::condition_variable wake; // ends the hold watcher early (init, shutdown)
  bool initialised = false;
  Sink sink = Sink::stderr_stream;
  std::string ident = "ctrl-exec";
  SyslogOptions options;
  SyslogClient syslog;
  std::vector<Record> records;
  // syslog_when_ready: the hold, and when the socket was last looked for.
  bool holding = false;
  std::vector<Record> held;
  Clock::time_point hold_end, last_look;
  uint64_t generation = 0; // bumped by init and shutdown, so an old watcher knows it is done
};

// Never destroyed: the hold watcher is a detached thread that may still wake up while the
// program exits.
State& state() {
  static State* s = new State;
  return *s;
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

void end_hold_locked(State& s) {
  s.holding = false;
  s.held.clear();
  s.held.shrink_to_fit();
}

// syslog_when_ready: switches to syslog if the socket is there and takes a connection, sending
// what the hold kept first.
bool try_switch_locked(State& s) {
  s.last_look = Clock::now();
  if (!is_socket(s.options.socket_path) || !s.syslog.open(s.options.socket_path)) return false;
  // These lines are on stderr already; one the daemon does not take is not written again.
  for (const auto& r : s.held)
    (void)s.syslog.send(s.ident, r.level, r.line);
  end_hold_locked(s);
  s.sink = Sink::syslog;
  return true;
}

// The background half of the hold: a program that logs its start line and then waits quietly
// still reaches syslog when the daemon comes up a moment later.
void watch_hold(uint64_t generation) {
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mu);
  while (s.generation == generation && s.sink == Sink::syslog_when_ready && s.holding) {
    if (try_switch_locked(s)) return;
    Clock::time_point now = Clock::now();
    if (now >= s.hold_end) {
      end_hold_locked(s);
      return;
    }
    s.wake.wait_until(lock,
                      std::min(now + std::chrono::milliseconds(s.options.poll_ms), s.hold_end));
  }
}

void close_locked(State& s) {
  s.syslog.close();
  end_hold_locked(s);
  ++s.generation;
  s.wake.notify_all();
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
  return dev_log_exists ? Sink::syslog : Sink::syslog_when_ready;
}

void init(std::string_view ident) {
  SyslogOptions options;
  init(ident, choose_sink(std::getenv("CTRL_EXEC_LOG"), is_socket(options.socket_path)), options);
}

void init(std::string_view ident, Sink sink, const SyslogOptions& options) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  close_locked(s);
  s.ident = std::string(ident);
  s.sink = sink;
  s.options = options;
  s.initialised = true;
  s.records.clear();
  if (sink == Sink::syslog) (void)s.syslog.open(options.socket_path);
  if (sink != Sink::syslog_when_ready || try_switch_locked(s)) return;
  if (options.hold_ms == 0) return;
  s.holding = true;
  s.hold_end = Clock::now() + std::chrono::milliseconds(options.hold_ms);
  try {
    std::thread(watch_hold, s.generation).detach();
  } catch (const std::system_error&) {
    // No thread to spare: lines being written still look for the socket.
  }
}

void shutdown() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  close_locked(s);
  s.initialised = false;
  s.sink = Sink::stderr_stream;
}

Sink current_sink() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.sink;
}

void write(Level level, std::string_view action, const Fields& fields) {
  std::string line = format_line(action, fields);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.initialised) {
    write_stderr(s.ident, line);
    return;
  }
  if (s.sink == Sink::syslog_when_ready) {
    Clock::time_point now = Clock::now();
    if (s.holding && now >= s.hold_end) end_hold_locked(s);
    auto every = std::chrono::milliseconds(s.holding ? s.options.poll_ms : s.options.recheck_ms);
    if (now - s.last_look >= every) (void)try_switch_locked(s);
  }
  switch (s.sink) {
  case Sink::syslog:
    if (!s.syslog.send(s.ident, level, line)) write_stderr(s.ident, line);
    break;
  case Sink::syslog_when_ready:
    write_stderr(s.ident, line);
    if (s.holding && s.held.size() < kMaxHeldLines) s.held.push_back({level, std::move(line)});
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
