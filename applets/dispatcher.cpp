// ctrl-exec-dispatcher (alias ced): the operator CLI. This file only parses the command line
// and calls the command implementations in src/engine and src/pairing.
//
// Options follow the original's Getopt::Long rules (applets/options.hpp) anywhere before a bare
// `--`; everything after `--` goes to the script untouched.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "applets/pairing_hooks.hpp"
#include "base/exit_codes.hpp"
#include "base/paths.hpp"
#include "cli/dispatcher_args.hpp"
#include "engine/commands.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "pairing/commands.hpp"
#include "state_backend.hpp"

namespace {

using cx::applets::CommandLine;
using cx::applets::OptionError;
using cx::applets::parse_command_line;
using cx::applets::print_version;
using cx::applets::usage_error;
using cx::cli::DispatcherArgs;

constexpr const char* kName = "ctrl-exec-dispatcher";

int pairing_mode(const DispatcherArgs& a) {
  return cx::pairing::run_pairing_mode(a, pairing_hooks());
}

struct Mode {
  const char* name;
  cx::cli::Command* run;
  const char* usage;
};

const Mode kModes[] = {
    {"setup-ca", cx::pairing::cmd_setup_ca, "setup-ca [--key-type ec|rsa] [--force]"},
    {"setup-ctrl-exec", cx::pairing::cmd_setup_ctrl_exec, "setup-ctrl-exec [--key-type ec|rsa]"},
    {"pairing-mode", pairing_mode, "pairing-mode [start|stop] [--timeout <1-600>] [--port <n>]"},
    {"list-requests", cx::pairing::cmd_list_requests, "list-requests"},
    {"approve", cx::pairing::cmd_approve,
     "approve <reqid> [--lookup-by ip|hostname] [--ip <addr>] [--agent-port <n>]"},
    {"deny", cx::pairing::cmd_deny, "deny <reqid>"},
    {"list-agents", cx::pairing::cmd_list_agents, "list-agents [--tags k=v[,k=v...]] [--json]"},
    {"edit-agent", cx::pairing::cmd_edit_agent,
     "edit-agent <name> [--rename <new>] [--ip <addr>] [--agent-port <n>] "
     "[--lookup-by ip|hostname] [--json]"},
    {"unpair", cx::pairing::cmd_unpair, "unpair <hostname>"},
    {"run", cx::engine::cmd_run,
     "run [<host>[:<port>]...] <script> [--tags k=v[,k=v...]] [--batch N|N%]\n"
     "      [--batch-wait <s>] [--max-failures K|K%] [--async] [--follow] [--json]\n"
     "      [-- <arg>...]"},
    {"ping", cx::engine::cmd_ping,
     "ping [<host>[:<port>]...] [--tags k=v[,k=v...]] [--batch N|N%] [--batch-wait <s>]\n"
     "      [--max-failures K|K%] [--json]"},
    {"status", cx::engine::cmd_status, "status <reqid> [--json]"},
    {"wait", cx::engine::cmd_wait, "wait <reqid> [--timeout <seconds>] [--json]"},
    {"list-locks", cx::engine::cmd_list_locks, "list-locks [--json]"},
    {"serial-status", cx::engine::cmd_serial_status, "serial-status [--json]"},
    {"maintain", cx::engine::cmd_maintain, "maintain [--json]"},
    {"rotate-cert", cx::engine::cmd_rotate_cert, "rotate-cert [--force]"},
    {"state", cx::engine::cmd_state, "state export [<file>] | state import <file> [--apply]"},
};

std::string usage() {
  std::string u = "Usage: ctrl-exec-dispatcher <mode> [options] [arguments]\n"
                  "\n"
                  "Modes:\n";
  for (const auto& m : kModes)
    u += "  " + std::string(m.usage) + "\n";
  u += "\n"
       "Options (anywhere before `--`; any unique prefix):\n"
       "  --config <path>     config file (default " +
       cx::paths::dispatcher_config() +
       ")\n"
       "  --json              JSON output where a mode supports it\n"
       "  --port <n>          default agent port (run/ping/status/wait/maintain);\n"
       "                      listen port (pairing-mode, default 7444)\n"
       "  --username <name>   auth context (default $USER)\n"
       "  --token <token>     auth context, forwarded to agents (default $ENVEXEC_TOKEN)\n"
       "  --timeout <s>       wait (default 300) / pairing-mode (1-600)\n"
       "  --tags k=v[,k=v]    list-agents: filter; run/ping: also address every agent\n"
       "                      whose cached tags match all pairs (refreshed by ping)\n"
       "  --batch N|N%        run/ping: N hosts (or N% of them) at a time; each batch is\n"
       "                      a run of its own (reqid, auth hook, locks); max 500\n"
       "  --batch-wait <s>    seconds between batches (needs --batch)\n"
       "  --max-failures K|K% stop before the next batch once more than K hosts (or K%)\n"
       "                      failed; the rest are skipped, exit 1 (needs --batch)\n"
       "  --follow            run: print each output line as it arrives, prefixed with\n"
       "                      its host, then one summary line per host; with --json,\n"
       "                      NDJSON events, then the usual JSON (not with --async)\n"
       "  --apply             state import: write (without it, a dry run)\n"
       "  --version           print the version\n"
       "  --help              print this help\n";
  return u;
}

// Everything the command line sets.
struct Command {
  DispatcherArgs args;
  std::vector<std::string> words;
  bool version = false, help = false;
};

// The options, declared once: the parser below and dispatcher_interface() read them.
void declare_options(CLI::App& app, Command& c) {
  DispatcherArgs& args = c.args;
  app.set_help_flag(); // --help is handled below, with our own usage text
  app.add_option("--config", args.config_path);
  app.add_flag("--json", args.json);
  app.add_flag("--async", args.async);
  app.add_flag("--follow", args.follow);
  app.add_flag("--force", args.force);
  app.add_flag("--apply", args.apply);
  app.add_flag("--version", c.version);
  app.add_flag("--help", c.help);
  app.add_option("--port", args.port);
  app.add_option("--agent-port", args.agent_port);
  app.add_option("--timeout", args.timeout);
  app.add_option("--username", args.username_opt);
  app.add_option("--token", args.token_opt);
  app.add_option("--lookup-by", args.lookup_by);
  app.add_option("--ip", args.ip);
  app.add_option("--rename", args.rename);
  app.add_option("--tags", args.tags);
  app.add_option("--batch", args.batch);
  app.add_option("--batch-wait", args.batch_wait);
  app.add_option("--max-failures", args.max_failures);
  app.add_option("--key-type", args.key_type);
  app.add_option("words", c.words);
}

} // namespace

AppletInterface dispatcher_interface() {
  Command c;
  CLI::App app(kName, kName);
  declare_options(app, c);
  AppletInterface out{kName, cx::applets::declared_options(app), {}};
  for (const auto& m : kModes)
    out.modes.push_back(m.name);
  return out;
}

int dispatcher_main(int argc, char** argv) {
  cx::applets::install_state_backend_hook(/*probe=*/true);
  cx::event::ignore_sigpipe();
  Command c;
  DispatcherArgs& args = c.args;
  std::vector<std::string>& words = c.words;
  CLI::App app(kName, kName);
  declare_options(app, c);
  CommandLine line;
  if (auto err = parse_command_line(app, {argv + 1, argv + argc}, true, &line))
    return usage_error(kName, err->message, err->kind == OptionError::Kind::name ? usage() : "");
  args.has_dashdash = line.has_dashdash;
  args.script_args = std::move(line.tail);
  if (c.version) return print_version(kName);
  if (c.help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (words.empty()) {
    std::fputs(usage().c_str(), stderr);
    return cx::kExitUsage;
  }
  args.mode = words.front();
  args.words.assign(words.begin() + 1, words.end());
  for (const auto& m : kModes) {
    if (args.mode == m.name) {
      cx::log::init(kName);
      return m.run(args);
    }
  }
  std::fprintf(stderr, "Unknown mode '%s'\n%s", args.mode.c_str(), usage().c_str());
  return cx::kExitUsage;
}
