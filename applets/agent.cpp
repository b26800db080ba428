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

} // namespace

int agent_main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  cx::agent::remember_argv0(argc > 0 ? argv[0] : nullptr);
  // The hidden job-supervisor mode (see src/agent/async_job.hpp); not in the usage text.
  if (argc >= 2 && std::string_view(argv[1]) == cx::agent::kSupervisorMode)
    return cx::agent::run_async_supervisor();

  CLI::App app{kName};
  app.set_help_flag();
  cx::agent::Paths paths{cx::paths::agent_config(), cx::paths::agent_allowlist()};
  cx::agent::RequestPairingOptions pairing;
  std::vector<std::string> words;
  bool show_version = false, show_help = false;
  std::string lookup_by;
  app.add_option("--config", paths.config);
  app.add_option("--allowlist", paths.allowlist);
  app.add_option("--dispatcher", pairing.dispatcher);
  app.add_option("--port", pairing.port);
  app.add_flag("--background", pairing.background);
  app.add_option("--timeout", pairing.timeout);
  std::string key_type;
  app.add_option("--key-type", key_type);
  CLI::Option* lookup_opt = app.add_option("--lookup-by", lookup_by);
  app.add_flag("--version", show_version);
  app.add_flag("--help", show_help);
  app.add_option("words", words);
  if (auto err = cx::applets::parse_command_line(app, {argv + 1, argv + argc}))
    return cx::applets::usage_error(kName, err->message, usage());
  if (show_version) return cx::applets::print_version(kName);
  if (show_help || words.empty()) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  const std::string& mode = words.front();
  if (words.size() > 1)
    return cx::applets::usage_error(kName, "unexpected argument '" + words[1] + "'", usage());

  cx::log::init(kName);
  if (mode == "serve") return cx::agent::serve(paths);
  if (mode == "pairing-status") return cx::agent::pairing_status(paths);
  if (mode == "self-check") return cx::agent::self_check(paths);
  if (mode == "self-ping") return cx::agent::self_ping(paths);
  if (mode == "promote-cert") return cx::agent::promote_cert(paths);
  if (mode == "cert-staged") return cx::agent::cert_staged(paths);
  if (mode == "paired") return cx::agent::paired(paths);
  if (mode == "request-pairing") {
    // The values (--dispatcher required, --lookup-by ip|hostname, --timeout at most 600 with
    // --background, the port range) are checked by request_pairing, with its fatal messages.
    if (lookup_opt->count() > 0) pairing.lookup_by = lookup_by;
    if (!key_type.empty()) {
      auto spec = cx::pki::parse_key_type(key_type, cx::agent::kDefaultAgentRsaBits);
      if (!spec.ok()) {
        std::fprintf(stderr, "%s: --key-type: %s\n", kName, spec.message().c_str());
        return cx::kExitUsage;
      }
      pairing.key = *spec;
    }
    pairing.config_path = paths.config;
    return cx::agent::request_pairing(pairing);
  }
  std::fprintf(stderr, "Unknown mode '%s'\n\n%s", mode.c_str(), usage().c_str());
  return cx::kExitUsage;
}
