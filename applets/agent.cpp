// ctrl-exec-agent (alias cea): the agent. This file only parses the command line (agent-and-wire
// §1.1) and calls into src/agent (serve, request-pairing and the small modes).
//
// Options follow the original's Getopt::Long rules (applets/options.hpp). A bad option prints
// the usage on stderr and exits 2; no mode prints it on stdout and exits 0.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/async_job.hpp"
#include "agent/modes.hpp"
#include "agent/requester.hpp"
#include "agent/serve.hpp"
#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "base/exit_codes.hpp"
#include "base/paths.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"

namespace {

constexpr const char* kName = "ctrl-exec-agent";

std::string usage() {
  return "Usage: ctrl-exec-agent <mode> [options]\n"
         "\n"
         "Modes:\n"
         "  serve              run the mTLS server on the port set in agent.conf\n"
         "  request-pairing    pair with a dispatcher (--dispatcher is required)\n"
         "  pairing-status     show whether this agent is paired\n"
         "  self-check         check the config, the allowlist and the certificates\n"
         "  self-ping          mTLS ping of the running agent on 127.0.0.1\n"
         "\n"
         "Options:\n"
         "  --config <path>        agent.conf (default " +
         cx::paths::agent_config() +
         ")\n"
         "  --allowlist <path>     scripts.conf (default " +
         cx::paths::agent_allowlist() +
         ")\n"
         "  --dispatcher <host>    dispatcher host or IP (request-pairing)\n"
         "  --port <n>             the dispatcher's pairing port (default 7444)\n"
         "  --background           pair without waiting at the terminal\n"
         "  --timeout <n>          seconds to wait for approval with --background (default 30, "
         "at most 600)\n"
         "  --lookup-by <ip|hostname>  how the dispatcher should reach this agent\n"
         "  --key-type <ec|rsa[:bits]>  the agent's new key (default rsa:2048, which every\n"
         "                         dispatcher signs; bits 2048, 3072 or 4096)\n"
         "  --version              print the version\n";
}

// Everything the command line sets.
struct Command {
  cx::agent::Paths paths{cx::paths::agent_config(), cx::paths::agent_allowlist()};
  cx::agent::RequestPairingOptions pairing;
  std::vector<std::string> words;
  bool show_version = false, show_help = false;
  std::string lookup_by, key_type;
  CLI::Option* lookup_opt = nullptr;
};

// The options, declared once: the parser below and agent_interface() read them.
void declare_options(CLI::App& app, Command& c) {
  app.set_help_flag();
  app.add_option("--config", c.paths.config);
  app.add_option("--allowlist", c.paths.allowlist);
  app.add_option("--dispatcher", c.pairing.dispatcher);
  app.add_option("--port", c.pairing.port);
  app.add_flag("--background", c.pairing.background);
  app.add_option("--timeout", c.pairing.timeout);
  app.add_option("--key-type", c.key_type);
  c.lookup_opt = app.add_option("--lookup-by", c.lookup_by);
  app.add_flag("--version", c.show_version);
  app.add_flag("--help", c.show_help);
  app.add_option("words", c.words);
}

int request_pairing(Command& c) {
  // The values (--dispatcher required, --lookup-by ip|hostname, --timeout at most 600 with
  // --background, the port range) are checked by request_pairing, with its fatal messages.
  if (c.lookup_opt->count() > 0) c.pairing.lookup_by = c.lookup_by;
  if (!c.key_type.empty()) {
    auto spec = cx::pki::parse_key_type(c.key_type, cx::agent::kDefaultAgentRsaBits);
    if (!spec.ok()) {
      std::fprintf(stderr, "%s: --key-type: %s\n", kName, spec.message().c_str());
      return cx::kExitUsage;
    }
    c.pairing.key = *spec;
  }
  c.pairing.config_path = c.paths.config;
  return cx::agent::request_pairing(c.pairing);
}

// The modes; the last three are unlisted (used by the renewal units and scripts), and
// request-pairing takes the whole command.
struct Mode {
  const char* name;
  int (*run)(const cx::agent::Paths&);
};
const Mode kModes[] = {
    {"serve", cx::agent::serve},
    {"request-pairing", nullptr},
    {"pairing-status", cx::agent::pairing_status},
    {"self-check", cx::agent::self_check},
    {"self-ping", cx::agent::self_ping},
    {"promote-cert", cx::agent::promote_cert},
    {"cert-staged", cx::agent::cert_staged},
    {"paired", cx::agent::paired},
};

} // namespace

AppletInterface agent_interface() {
  Command c;
  CLI::App app{kName};
  declare_options(app, c);
  AppletInterface out{kName, cx::applets::declared_options(app), {cx::agent::kSupervisorMode}};
  for (const auto& m : kModes)
    out.modes.push_back(m.name);
  return out;
}

int agent_main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  cx::agent::remember_argv0(argc > 0 ? argv[0] : nullptr);
  // The hidden job-supervisor mode (see src/agent/async_job.hpp); not in the usage text.
  if (argc >= 2 && std::string_view(argv[1]) == cx::agent::kSupervisorMode)
    return cx::agent::run_async_supervisor();

  CLI::App app{kName};
  Command c;
  declare_options(app, c);
  if (auto err = cx::applets::parse_command_line(app, {argv + 1, argv + argc}))
    return cx::applets::usage_error(kName, err->message, usage());
  if (c.show_version) return cx::applets::print_version(kName);
  if (c.show_help || c.words.empty()) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  const std::string& mode = c.words.front();
  if (c.words.size() > 1)
    return cx::applets::usage_error(kName, "unexpected argument '" + c.words[1] + "'", usage());

  for (const auto& m : kModes) {
    if (mode != m.name) continue;
    cx::log::init(kName);
    return m.run ? m.run(c.paths) : request_pairing(c);
  }
  std::fprintf(stderr, "Unknown mode '%s'\n\n%s", mode.c_str(), usage().c_str());
  return cx::kExitUsage;
}
