// ctrl-exec-exec: the agent's privileged executor (agent-and-wire §4.8). `serve` runs the root
// daemon on its unix socket, `resolve` prints the decision the executor would make for one
// script, and the hidden `__run-confined` mode is the trampoline each run passes through
// (src/exec/confine.hpp).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "base/exit_codes.hpp"
#include "exec/confine.hpp"
#include "exec/policy.hpp"
#include "exec/server.hpp"

namespace {

constexpr const char* kName = "ctrl-exec-exec";

const char* kUsage =
    "Usage: ctrl-exec-exec serve <socket> <agent.conf> <scripts.conf> <peer-user>\n"
    "       ctrl-exec-exec resolve <agent.conf> <scripts.conf> <script-name>\n"
    "       ctrl-exec-exec --help | --version\n"
    "\n"
    "The privileged half of the agent. With 'executor_socket' set in agent.conf, the agent\n"
    "hands each authorised run to this executor, which re-checks the script against its own\n"
    "reading of agent.conf and scripts.conf and runs it under the script's [profile]:\n"
    "run_as, caps, writable, no_new_privileges.\n"
    "\n"
    "  serve     run as root: listen on <socket> (owned by <peer-user>, mode 0600) and run\n"
    "            scripts for the agent. SIGHUP re-reads the two files (they are also re-read\n"
    "            when they change); a bad new config keeps the old one.\n"
    "  resolve   print the decision for <script-name>: 'OK path=...|profile=...|run_as=...|\n"
    "            nnp=0|1|caps=...|writable=...' or 'DENY <reason>'; exit 2 on a config error.\n";

int resolve(const std::string& agent_conf, const std::string& scripts_conf,
            const std::string& name) {
  auto policy = cx::exec::load_policy(agent_conf, scripts_conf);
  if (!policy.ok()) {
    std::fprintf(stderr, "%s: %s\n", kName, policy.message().c_str());
    return 2; // as the original's resolve
  }
  std::printf("%s\n", cx::exec::decision_line(cx::exec::decide(**policy, name)).c_str());
  return cx::kExitOk;
}

// The modes with the number of words each takes, and the options (alone on the line).
struct Mode {
  const char* name;
  size_t words;
};
constexpr Mode kModes[] = {{"serve", 4}, {"resolve", 3}};
constexpr const char* kHelp = "--help";
constexpr const char* kVersion = "--version";

} // namespace

AppletInterface exec_interface() {
  AppletInterface out{kName, {{kHelp + 2, false}, {kVersion + 2, false}}, {cx::exec::kConfineMode}};
  for (const auto& m : kModes)
    out.modes.push_back(m.name);
  return out;
}

int exec_main(int argc, char** argv) {
  // The trampoline first, and untouched: its arguments are the executor's, not a user's.
  if (argc >= 2 && std::strcmp(argv[1], cx::exec::kConfineMode) == 0)
    return cx::exec::run_confined(argc, argv);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && (args[0] == kHelp || args[0] == "-h")) {
    std::fputs(kUsage, stdout);
    return cx::kExitOk;
  }
  if (args.size() == 1 && args[0] == kVersion) return cx::applets::print_version(kName);
  for (const auto& m : kModes) {
    if (args.empty() || args[0] != m.name) continue;
    if (args.size() != m.words + 1)
      return cx::applets::usage_error(kName, "wrong number of arguments for '" + args[0] + "'",
                                      kUsage);
    if (args[0] == "serve") return cx::exec::serve({args[1], args[2], args[3], args[4]});
    return resolve(args[1], args[2], args[3]);
  }
  return cx::applets::usage_error(
      kName, args.empty() ? "no mode given" : "unknown mode '" + args[0] + "'", kUsage);
}
