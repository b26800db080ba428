// ctrl-exec-pairing: the 7444 pairing listener, the same code as `ced pairing-mode`
// (dispatcher-and-api §4.8, §8). It also hosts the two detached halves that the pairing
// commands re-execute: the background listener (pairing-mode start) and the waiting half of
// `ctrl-exec-agent request-pairing --background`; those flags are hidden.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "agent/requester.hpp"
#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "applets/pairing_hooks.hpp"
#include "base/exit_codes.hpp"
#include "base/paths.hpp"
#include "cli/dispatcher_args.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "pairing/mode.hpp"
#include "state_backend.hpp"

namespace {

using cx::applets::OptionError;
using cx::applets::parse_command_line;
using cx::applets::print_version;
using cx::applets::usage_error;

constexpr const char* kName = "ctrl-exec-pairing";

// The usage text, around the --config default (what --config said, else the default).
const char* kUsage =
    "Usage: ctrl-exec-pairing [start|stop] [--timeout <1-600>] [--port <n>] [--config <path>]\n"
    "\n"
    "Runs the dispatcher's pairing listener (the same as 'ctrl-exec-dispatcher pairing-mode'):\n"
    "  (no word)   in the foreground, with the interactive prompt when stdin is a terminal\n"
    "              or a pipe\n"
    "  start       in the background; stop it with 'ctrl-exec-pairing stop'\n"
    "  stop        stop the background listener\n"
    "\n"
    "Options:\n"
    "  --config <path>   dispatcher config (default ";
const char* kUsageEnd =
    ")\n"
    "  --timeout <s>     auto-stop after this many seconds (1-600; default pairing_timeout, else "
    "600)\n"
    "  --port <n>        listen port (default 7444)\n";

std::string usage(const std::string& config_path) {
  return kUsage + config_path + kUsageEnd;
}

// Everything the command line sets.
struct Command {
  cx::cli::DispatcherArgs args;
  std::vector<std::string> words;
  std::string lookup_by, key_type;
  bool version = false, help = false, daemon_child = false, request_child = false;
  cx::agent::RequestPairingOptions req;
};

// The options, declared once: the parser below and pairing_interface() read them.
void declare_options(CLI::App& app, Command& c) {
  app.set_help_flag();
  app.add_option("--config", c.args.config_path);
  app.add_option("--timeout", c.args.timeout);
  app.add_option("--port", c.args.port);
  app.add_flag("--version", c.version);
  app.add_flag("--help", c.help);
  app.add_flag(cx::pairing::kDaemonChildFlag, c.daemon_child)->group("");
  app.add_flag(cx::agent::kRequestChildFlag, c.request_child)->group("");
  app.add_option("--dispatcher", c.req.dispatcher)->group("");
  app.add_option("--lookup-by", c.lookup_by)->group("");
  app.add_option("--key-type", c.key_type)->group("");
  app.add_option("words", c.words);
}

} // namespace

AppletInterface pairing_interface() {
  Command c;
  CLI::App app(kName, kName);
  declare_options(app, c);
  return {kName, cx::applets::declared_options(app), {}}; // start|stop: pairing/mode.cpp
}

int pairing_main(int argc, char** argv) {
  cx::applets::install_state_backend_hook(/*probe=*/true);
  cx::event::ignore_sigpipe();
  Command c;
  cx::cli::DispatcherArgs& args = c.args;
  std::vector<std::string>& words = c.words;
  std::string& lookup_by = c.lookup_by;
  std::string& key_type = c.key_type;
  cx::agent::RequestPairingOptions& req = c.req;
  CLI::App app(kName, kName);
  declare_options(app, c);
  // As `ced pairing-mode`: a bad option is shown with the usage, a bad value without.
  if (auto err = parse_command_line(app, {argv + 1, argv + argc}))
    return usage_error(kName, err->message,
                       err->kind == OptionError::Kind::name ? usage(args.config_path) : "");
  if (c.version) return print_version(kName);
  if (c.help) {
    std::fputs(usage(args.config_path).c_str(), stdout);
    return 0;
  }

  if (c.request_child) {
    // The detached half of request-pairing --background: an agent-side action.
    cx::log::init("ctrl-exec-agent");
    req.config_path = args.config_path;
    req.port = args.port.value_or(cx::paths::kPairingPort);
    req.background = true;
    req.timeout = args.timeout.value_or(30);
    if (!lookup_by.empty()) req.lookup_by = lookup_by;
    if (!key_type.empty()) {
      auto spec = cx::pki::parse_key_type(key_type, cx::agent::kDefaultAgentRsaBits);
      if (!spec.ok()) {
        std::fprintf(stderr, "ctrl-exec-agent: --key-type: %s\n", spec.message().c_str());
        return cx::kExitUsage;
      }
      req.key = *spec;
    }
    return cx::agent::request_pairing(req);
  }

  cx::log::init("ctrl-exec-dispatcher");
  args.mode = "pairing-mode";
  args.words = words;
  return cx::pairing::run_pairing_mode(args, pairing_hooks(), c.daemon_child);
}
