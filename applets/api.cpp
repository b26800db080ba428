// ctrl-exec-api: the HTTP JSON API on 7445 (dispatcher-and-api §6). This file only parses the
// command line, by the rules of applets/options.hpp; the server is src/api.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "api/api.hpp"
#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "base/exit_codes.hpp"
#include "base/paths.hpp"
#include "state_backend.hpp"

namespace {

constexpr const char* kName = "ctrl-exec-api";

struct Command {
  std::string config = cx::paths::dispatcher_config();
  bool show_version = false;
};

// The options, declared once: the parser below and api_interface() read them. CLI11's own
// --help stays, and prints the help text made from these.
void declare_options(CLI::App& app, Command& c) {
  app.add_option("--config", c.config, "config file (default " + c.config + ")");
  app.add_flag("--version", c.show_version, "print the version");
}

} // namespace

AppletInterface api_interface() {
  Command c;
  CLI::App app{kName, kName};
  declare_options(app, c);
  return {kName, cx::applets::declared_options(app), {}};
}

int api_main(int argc, char** argv) {
  cx::applets::install_state_backend_hook(/*probe=*/false);
  CLI::App app{"ctrl-exec-api - the HTTP JSON API of a ctrl-exec dispatcher", kName};
  Command c;
  declare_options(app, c);
  if (auto err = cx::applets::parse_command_line(app, {argv + 1, argv + argc})) {
    if (err->kind == cx::applets::OptionError::Kind::help) {
      std::fputs(app.help().c_str(), stdout); // CLI11's help text, from the options above
      return 0;
    }
    std::fprintf(stderr, "Usage: ctrl-exec-api [--config <path>]\n");
    return cx::kExitUsage;
  }
  if (c.show_version) return cx::applets::print_version(kName);
  return cx::api::run(c.config);
}
