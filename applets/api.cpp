// ctrl-exec-api: the HTTP JSON API on 7445 (dispatcher-and-api §6). This file only parses the
// command line; the server is src/api.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "api/api.hpp"
#include "applets/applets.hpp"
#include "base/paths.hpp"
#include "base/version.hpp"

int api_main(int argc, char** argv) {
  CLI::App app{"ctrl-exec-api - the HTTP JSON API of a ctrl-exec dispatcher", "ctrl-exec-api"};
  std::string config = cx::paths::dispatcher_config();
  bool show_version = false;
  app.add_option("--config", config, "config file (default " + config + ")");
  app.add_flag("--version", show_version, "print the version");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError&) {
    std::fprintf(stderr, "Usage: ctrl-exec-api [--config <path>]\n");
    return 2;
  }
  if (show_version) {
    std::printf("ctrl-exec-api %.*s\n", static_cast<int>(cx::version().size()),
                cx::version().data());
    return 0;
  }
  return cx::api::run(config);
}
