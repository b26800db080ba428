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

} // namespace

int pairing_main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  cx::cli::DispatcherArgs args;
  std::vector<std::string> words;
  std::string lookup_by;
  bool version = false, help = false, daemon_child = false, request_child = false;
  cx::agent::RequestPairingOptions req;

  CLI::App app(kName, kName);
  app.set_help_flag();
  app.add_option("--config", args.config_path);
  app.add_option("--timeout", args.timeout);
  app.add_option("--port", args.port);
  app.add_flag("--version", version);
  app.add_flag("--help", help);
  app.add_flag(cx::pairing::kDaemonChildFlag, daemon_child)->group("");
  app.add_flag(cx::agent::kRequestChildFlag, request_child)->group("");
  app.add_option("--dispatcher", req.dispatcher)->group("");
  app.add_option("--lookup-by", lookup_by)->group("");
  std::string key_type;
  app.add_option("--key-type", key_type)->group("");
  app.add_option("words", words);
  // As `ced pairing-mode`: a bad option is shown with the usage, a bad value without.
  if (auto err = parse_command_line(app, {argv + 1, argv + argc}))
    return usage_error(kName, err->message,
                       err->kind == OptionError::Kind::name ? usage(args.config_path) : "");
  if (version) return print_version(kName);
  if (help) {
    std::fputs(usage(args.config_path).c_str(), stdout);
    return 0;
  }

  if (request_child) {
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
  return cx::pairing::run_pairing_mode(args, pairing_hooks(), daemon_child);
}
