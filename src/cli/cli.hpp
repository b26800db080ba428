// What every command of the CLIs prints and loads with: out() and die() as the original's
// `$| = 1` print and `die`, and the dispatcher config loaded the way a command loads it. The
// module sits above conf/ and log/ and below the commands in engine/, pairing/ and agent/; it
// is header-only.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <string>

#include "base/exit_codes.hpp"
#include "base/hostname.hpp"
#include "conf/dispatcher.hpp"
#include "log/log.hpp"

namespace cx::cli {

// Prints to stdout and flushes at once, so that output stays in order with stderr and with
// what children print.
inline void out(const std::string& s) {
  std::fputs(s.c_str(), stdout);
  std::fflush(stdout);
}

// A fatal error: `msg` and a line break (unless it ends with one) on stderr. Returns `code`,
// for `return die(...)`.
inline int die(const std::string& msg, int code = kExitFatal) {
  std::fputs(msg.c_str(), stderr);
  if (msg.empty() || msg.back() != '\n') std::fputc('\n', stderr);
  return code;
}

inline void log_config_warnings(const std::vector<conf::ConfigWarning>& warnings) {
  for (const auto& w : warnings)
    log::warning("config-warn", {{"KEY", w.key}, {"MSG", w.message}});
}

// What runs on every dispatcher config a command loads, before the command uses it: the
// dispatcher, pairing and API applets install opening the state backend it names (state/
// backend.hpp), which this module does not know. An error stops the command.
inline std::function<Status(const conf::DispatcherConfig&)>& on_config_loaded() {
  static std::function<Status(const conf::DispatcherConfig&)> hook;
  return hook;
}

// The dispatcher config, its warnings logged as `config-warn KEY MSG`, and the state backend it
// names opened; nullopt after printing the loader's message on stderr (the command then exits
// kExitFatal).
inline std::optional<conf::DispatcherConfig> load_config(const std::string& path, bool lenient) {
  auto load = conf::load_dispatcher_config(path, short_hostname(), lenient);
  if (!load.ok()) {
    die(load.message());
    return std::nullopt;
  }
  log_config_warnings(load->warnings);
  if (const auto& hook = on_config_loaded()) {
    if (Status st = hook(load->config); !st.ok()) {
      die(st.kind() == ErrorKind::config ? "Config error in '" + path + "': " + st.message()
                                         : st.message());
      return std::nullopt;
    }
  } else if (load->config.state_backend != "files") {
    die("Config error in '" + path + "': state_backend = " + load->config.state_backend +
        " is not supported by this command");
    return std::nullopt;
  }
  return std::move(load->config);
}

} // namespace cx::cli
