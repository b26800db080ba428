// ctrl-exec-exec: not implemented yet; see the issue tracker. Until it is, it answers --version
// and otherwise says plainly that it cannot do anything, with exit 1. It never pretends to work.
#include <cstdio>
#include <cstring>

#include "applets/applets.hpp"
#include "applets/options.hpp"
#include "base/exit_codes.hpp"

int exec_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--version") == 0) return cx::applets::print_version("ctrl-exec-exec");
  std::fprintf(stderr,
               "ctrl-exec-exec: this applet is not built yet in this version of ctrl-exec\n");
  return cx::kExitFailure;
}
