// The applet entry points. Each lives in its own file in applets/ and is listed once in the
// table in applets/main.cpp.
#pragma once

int agent_main(int argc, char** argv);
int api_main(int argc, char** argv);
int dispatcher_main(int argc, char** argv);
int exec_main(int argc, char** argv);
int pairing_main(int argc, char** argv);

#include <cstdio>
#include <cstring>

#include "base/version.hpp"

// For an applet whose implementation has not landed yet: it answers --version and otherwise
// says plainly that it cannot do anything, with exit 1. It never pretends to work.
inline int applet_not_built(const char* name, int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--version") == 0) {
      std::printf("%s %.*s\n", name, static_cast<int>(cx::version().size()), cx::version().data());
      return 0;
    }
  std::fprintf(stderr, "%s: this applet is not built yet in this version of ctrl-exec\n", name);
  return 1;
}
