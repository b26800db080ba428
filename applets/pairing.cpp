// ctrl-exec-pairing: the 7444 pairing listener, the same code as `ced pairing-mode`
// (dispatcher-and-api §4.8, §8). It also hosts the two detached halves that the pairing
// commands re-execute: the background listener (pairing-mode start) and the waiting half of
// `ctrl-exec-agent request-pairing --background`; those flags are hidden.
#include <CLI/CLI.hpp>

#include <algorithm>

#include <cstdio>
#include <string>
#include <vector>

#include "agent/requester.hpp"
#include "applets/applets.hpp"
#include "applets/pairing_hooks.hpp"
#include "base/exit_codes.hpp"
#include "base/strings.hpp"
#include "base/version.hpp"
#include "cli/dispatcher_args.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "pairing/mode.hpp"

namespace {

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

} // namespace

int pairing_main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  cx::cli::DispatcherArgs args;
  std::vector<std::string> words;
  std::string timeout_text, lookup_by;
  bool version = false, help = false, daemon_child = false, request_child = false;
  cx::agent::RequestPairingOptions req;

  CLI::App app("ctrl-exec-pairing", "ctrl-exec-pairing");
  app.set_help_flag();
  app.add_option("--config", args.config_path);
  app.add_option("--timeout", timeout_text);
  app.add_option("--port", args.port);
  app.add_flag("--version", version);
  app.add_flag("--help", help);
  app.add_flag(cx::pairing::kDaemonChildFlag, daemon_child)->group("");
  app.add_flag(cx::agent::kRequestChildFlag, request_child)->group("");
  app.add_option("--dispatcher", req.dispatcher)->group("");
  app.add_option("--lookup-by", lookup_by)->group("");
  app.add_option("words", words);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ctrl-exec-pairing: %s\n", e.what());
    return cx::kExitUsage;
  }
  if (version) {
    std::printf("ctrl-exec-pairing %.*s\n", static_cast<int>(cx::version().size()),
                cx::version().data());
    return 0;
  }
  if (help) {
    std::printf("%s%s)\n  --timeout <s>     auto-stop after this many seconds (1-600; default "
                "pairing_timeout, else 600)\n  --port <n>        listen port (default 7444)\n",
                kUsage, args.config_path.c_str());
    return 0;
  }
  std::optional<int64_t> timeout;
  if (!timeout_text.empty()) {
    timeout = cx::parse_int(timeout_text);
    if (!timeout) {
      std::fprintf(stderr, "Error: --timeout must be an integer number of seconds.\n");
      return cx::kExitUsage;
    }
  }

  if (request_child) {
    // The detached half of request-pairing --background: an agent-side action.
    cx::log::init("ctrl-exec-agent");
    req.config_path = args.config_path;
    req.port = args.port.value_or(7444);
    req.background = true;
    req.timeout = static_cast<int>(timeout.value_or(30));
    if (!lookup_by.empty()) req.lookup_by = lookup_by;
    return cx::agent::request_pairing(req);
  }

  cx::log::init("ctrl-exec-dispatcher");
  args.mode = "pairing-mode";
  args.words = words;
  if (timeout) {
    // Out-of-int values are still out of range, and reported as such.
    args.timeout = static_cast<int>(std::clamp<int64_t>(*timeout, -1, 100000));
  }
  return cx::pairing::run_pairing_mode(args, pairing_hooks(), daemon_child);
}
