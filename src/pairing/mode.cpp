// pairing-mode: foreground, start, stop; see mode.hpp.
#include "pairing/mode.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "base/daemon.hpp"
#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"
#include "cli/cli.hpp"
#include "log/log.hpp"
#include "pairing/approve.hpp"

namespace cx::pairing {
namespace {

using cli::die;
using cli::out;

constexpr int kStartWaitTicks = 50; // × 100 ms: how long `start` waits for the pidfile
constexpr int kStopWaitTicks = 50;  // × 100 ms: how long `stop` waits for the exit

void sleep_tick() {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

std::optional<pid_t> read_pidfile(const std::string& path) {
  auto text = read_file(path, 64);
  if (!text.ok()) return std::nullopt;
  auto n = parse_uint(trim(*text));
  if (!n || *n == 0 || *n > 0x7fffffff) return std::nullopt;
  return static_cast<pid_t>(*n);
}

// A process that exists and is not a zombie waiting to be reaped (a reaped-late daemon must
// count as gone, or `stop` would wait for it forever).
bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!stat.ok()) return true; // no /proc: trust kill()
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return true;
  char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X';
}

int stop_background() {
  std::string pidfile = paths::pairing_pidfile();
  auto pid = read_pidfile(pidfile);
  if (!pid) {
    if (path_exists(pidfile)) {
      (void)remove_file(pidfile);
      out("No background pairing mode is running (cleared stale pidfile).\n");
    } else {
      out("No background pairing mode is running.\n");
    }
    return 0;
  }
  if (!process_alive(*pid)) {
    (void)remove_file(pidfile);
    out("No background pairing mode is running (cleared stale pidfile).\n");
    return 0;
  }
  ::kill(*pid, SIGTERM);
  for (int i = 0; i < kStopWaitTicks && process_alive(*pid); ++i)
    sleep_tick();
  std::string p = std::to_string(*pid);
  if (process_alive(*pid)) {
    out("Sent stop to PID " + p + " but it has not exited yet - check syslog.\n");
    return 0;
  }
  (void)remove_file(pidfile);
  log::info("pairing-mode-stop", {{"PID", p}});
  out("Pairing mode stopped (was PID " + p + "); pairing port closed.\n");
  return 0;
}

// Starts the background session: our own binary, re-executed detached as the ctrl-exec-pairing
// applet (base/daemon.hpp). Until its listener is up, the child's stderr is a pipe back to us,
// so a failure to start can be shown here rather than only in syslog.
int start_background(const cli::DispatcherArgs& args, const conf::DispatcherConfig& config,
                     int64_t timeout, int port) {
  std::string pidfile = paths::pairing_pidfile();
  if (auto pid = read_pidfile(pidfile)) {
    if (process_alive(*pid))
      return die("Pairing mode is already running in the background (PID " + std::to_string(*pid) +
                 ").\nStop it first with: ctrl-exec-dispatcher pairing-mode stop");
    (void)remove_file(pidfile);
  } else if (path_exists(pidfile)) {
    (void)remove_file(pidfile);
  }
  if (!is_regular_file(config.cert))
    return die("Cannot start pairing mode: the dispatcher certificate is missing:\n    " +
               config.cert + "\nRun 'ctrl-exec-dispatcher setup-ctrl-exec' first.");
  if (!is_regular_file(config.key))
    return die("Cannot start pairing mode: the dispatcher key is missing:\n    " + config.key +
               "\nRun 'ctrl-exec-dispatcher setup-ctrl-exec' first.");
  if (auto st = make_dirs(dirname(pidfile), 0755); !st.ok()) return die(st.message());

  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) return die("pipe: " + errno_text(errno));
  DetachedChild spec;
  spec.argv = {"ctrl-exec",
               "ctrl-exec-pairing",
               kDaemonChildFlag,
               "--config",
               absolute_path(args.config_path),
               "--timeout",
               std::to_string(timeout),
               "--port",
               std::to_string(port)};
  spec.stderr_fd = errpipe[1];
  auto spawned = spawn_detached(spec);
  ::close(errpipe[1]);
  if (!spawned.ok()) {
    ::close(errpipe[0]);
    return die(spawned.message());
  }
  pid_t child = *spawned;
  ::fcntl(errpipe[0], F_SETFL, O_NONBLOCK);
  std::string child_err;
  auto drain = [&] {
    char buf[1024];
    ssize_t n;
    while ((n = ::read(errpipe[0], buf, sizeof buf)) > 0)
      child_err.append(buf, static_cast<size_t>(n));
  };
  bool exited = false;
  std::optional<pid_t> started;
  for (int i = 0; i < kStartWaitTicks; ++i) {
    if ((started = read_pidfile(pidfile))) break;
    drain();
    if (::waitpid(child, nullptr, WNOHANG) == child) {
      exited = true;
      break;
    }
    sleep_tick();
  }
  drain();
  ::close(errpipe[0]);
  if (!started || exited) {
    if (!exited) ::kill(child, SIGTERM);
    if (!child_err.empty()) std::fputs(child_err.c_str(), stderr);
    return die("Pairing mode failed to start - check syslog.", kExitFailure);
  }
  out("Pairing mode started in the background on port " + std::to_string(port) + " (PID " +
      std::to_string(*started) + ").\nIt auto-stops after " + std::to_string(timeout) +
      "s; stop sooner with:\n    ctrl-exec-dispatcher pairing-mode stop\n");
  return 0;
}

} // namespace

TimeoutChoice choose_pairing_timeout(std::optional<int> flag,
                                     const conf::DispatcherConfig& config) {
  TimeoutChoice c;
  std::optional<int64_t> value;
  if (flag) {
    value = *flag;
  } else if (auto it = config.raw.find("pairing_timeout"); it != config.raw.end()) {
    value = conf::parse_config_int(it->second);
    if (!value) {
      c.error = "Error: --timeout must be an integer number of seconds.";
      return c;
    }
  }
  c.seconds = value.value_or(600);
  if (c.seconds < 1 || c.seconds > 600)
    c.error = "Error: --timeout must be between 1 and 600 seconds.";
  return c;
}

int run_pairing_mode(const cli::DispatcherArgs& args, const PairingModeHooks& hooks,
                     bool daemon_child) {
  std::string word = args.words.empty() ? "" : args.words[0];
  if (args.words.size() > 1 || (word != "" && word != "start" && word != "stop"))
    return die("Usage: ctrl-exec-dispatcher pairing-mode [start|stop] [--timeout <1-600>]",
               kExitUsage);
  if (word == "stop") return stop_background();

  auto loaded = cli::load_config(args.config_path, true);
  if (!loaded) return kExitFatal;
  const conf::DispatcherConfig& config = *loaded;
  TimeoutChoice timeout = choose_pairing_timeout(args.timeout, config);
  if (!timeout.error.empty()) return die(timeout.error, kExitUsage);
  int port = args.port.value_or(paths::kPairingPort);
  if (port < 0 || port > 65535)
    return die("Error: --port must be a port number (1-65535).", kExitUsage);
  if (word == "start") return start_background(args, config, timeout.seconds, port);

  ListenerOptions opts;
  opts.port = port;
  opts.timeout_s = timeout.seconds;
  opts.cert_path = config.cert;
  opts.key_path = config.key;
  opts.queue_dir = paths::pairing_dir();
  opts.max_queue = config.pairing_max_queue;
  opts.rate.volume = config.pairing_rate_limit;
  opts.rate.disabled = config.pairing_rate_limit_disable;
  opts.read_stdin = !daemon_child;
  ApproveContext ctx = approve_context(config);
  opts.approve = [ctx](const std::string& id) -> Status {
    auto res = approve_request(ctx, id);
    if (!res.ok()) return res.status();
    if (res->dispatcher_serial.empty())
      std::fputs(empty_serial_warning(ctx.cert_path).c_str(), stderr);
    out(format_approval(*res));
    return {};
  };
  opts.deny = [ctx](const std::string& id) -> Status {
    CX_TRY(deny_request(ctx, id));
    out("Denied request '" + id + "'.\n");
    return {};
  };
  if (hooks.cert_check) opts.periodic = hooks.cert_check(config);

  std::string pidfile = paths::pairing_pidfile();
  pid_t self = ::getpid();
  if (daemon_child) {
    opts.on_listening = [pidfile, self, &timeout](int) {
      WriteOptions w;
      w.mode = 0644;
      (void)write_file_atomic(pidfile, std::to_string(self) + "\n", w);
      log::info("pairing-mode-start",
                {{"PID", std::to_string(self)}, {"TIMEOUT", std::to_string(timeout.seconds)}});
      // Started: the parent has what it waited for; stderr goes where stdout went.
      ::dup2(STDOUT_FILENO, STDERR_FILENO);
    };
  }
  auto result = run_listener(std::move(opts));
  if (daemon_child) {
    if (auto pid = read_pidfile(pidfile); pid && *pid == self) (void)remove_file(pidfile);
  }
  if (!result.ok()) return die(result.message());
  return 0;
}

} // namespace cx::pairing
