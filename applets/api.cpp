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

int api_main(int argc, char** argv) {
  CLI::App app{"ctrl-exec-api - the HTTP JSON API of a ctrl-exec dispatcher", "ctrl-exec-api"};
  std::string config = cx::paths::dispatcher_config();
  bool show_version = false;
  app.add_option("--config", config, "config file (default " + config + ")");
  app.add_flag("--version", show_version, "print the version");
  if (auto err = cx::applets::parse_command_line(app, {argv + 1, argv + argc})) {
    if (err->kind == cx::applets::OptionError::Kind::help) {
      std::fputs(app.help().c_str(), stdout); // CLI11's help text, from the options above
      return 0;
    }
    std::fprintf(stderr, "Usage: ctrl-exec-api [--config <path>]\n");
    return cx::kExitUsage;
  }
  if (show_version) return cx::applets::print_version("ctrl-exec-api");
  return cx::api::run(config);
}
