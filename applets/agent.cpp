// ctrl-exec-agent (alias cea): the agent. This file only parses the command line (agent-and-wire
// §1.1) and calls into src/agent (serve, request-pairing and the small modes).
//
// Options follow the original's Getopt::Long rules: before or after the mode word, with one or
// two dashes, `--opt=value` or `--opt value`, abbreviated to any unique prefix. A bad option
// prints the usage on stderr and exits 2; no mode prints it on stdout and exits 0.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "agent/async_job.hpp"
#include "agent/modes.hpp"
#include "agent/requester.hpp"
#include "agent/server.hpp"
#include "applets/applets.hpp"
#include "base/exit_codes.hpp"
#include "base/paths.hpp"
#include "base/version.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"

namespace {

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
         "  --version              print the version\n";
}

struct OptionSpec {
  const char* name;
  bool takes_value;
};
const OptionSpec kOptions[] = {
    {"allowlist", true},  {"background", false}, {"config", true},
    {"dispatcher", true}, {"help", false},       {"lookup-by", true},
    {"port", true},       {"timeout", true},     {"version", false},
};

// Rewrites single-dash and abbreviated long options to `--<full name>`; false with `err` set
// for an unknown or ambiguous one.
bool normalise(std::vector<std::string>& args, std::string& err) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue;
    std::string_view body = std::string_view(a).substr(a[1] == '-' ? 2 : 1);
    size_t eq = body.find('=');
    std::string name(body.substr(0, eq));
    std::vector<const OptionSpec*> found;
    for (const auto& o : kOptions) {
      if (name == o.name) {
        found = {&o};
        break;
      }
      if (!name.empty() && std::string_view(o.name).rfind(name, 0) == 0) found.push_back(&o);
    }
    if (found.size() != 1) {
      err = found.empty() ? "unknown option '" + a + "'" : "option '" + a + "' is ambiguous";
      return false;
    }
    std::string full = "--" + std::string(found[0]->name);
    if (eq != std::string_view::npos) full += std::string(body.substr(eq));
    a = full;
    if (found[0]->takes_value && eq == std::string_view::npos) ++i; // its value follows
  }
  return true;
}

} // namespace

int agent_main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  cx::agent::remember_argv0(argc > 0 ? argv[0] : nullptr);
  // The hidden job-supervisor mode (see src/agent/async_job.hpp); not in the usage text.
  if (argc >= 2 && std::string_view(argv[1]) == cx::agent::kSupervisorMode)
    return cx::agent::run_async_supervisor();

  std::vector<std::string> args(argv + 1, argv + argc);
  std::string err;
  if (!normalise(args, err)) {
    std::fprintf(stderr, "ctrl-exec-agent: %s\n\n%s", err.c_str(), usage().c_str());
    return cx::kExitUsage;
  }

  CLI::App app{"ctrl-exec-agent"};
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
  CLI::Option* lookup_opt = app.add_option("--lookup-by", lookup_by);
  app.add_flag("--version", show_version);
  app.add_flag("--help", show_help);
  app.add_option("words", words);
  try {
    std::vector<std::string> rev(args.rbegin(), args.rend());
    app.parse(rev);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ctrl-exec-agent: %s\n\n%s", e.what(), usage().c_str());
    return cx::kExitUsage;
  }
  if (show_version) {
    std::printf("ctrl-exec-agent %.*s\n", static_cast<int>(cx::version().size()),
                cx::version().data());
    return 0;
  }
  if (show_help || words.empty()) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  const std::string& mode = words.front();
  if (words.size() > 1) {
    std::fprintf(stderr, "ctrl-exec-agent: unexpected argument '%s'\n\n%s", words[1].c_str(),
                 usage().c_str());
    return cx::kExitUsage;
  }

  cx::log::init("ctrl-exec-agent");
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
    pairing.config_path = paths.config;
    return cx::agent::request_pairing(pairing);
  }
  std::fprintf(stderr, "Unknown mode '%s'\n\n%s", mode.c_str(), usage().c_str());
  return cx::kExitUsage;
}
