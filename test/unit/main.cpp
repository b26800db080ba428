// The Catch2 main for every unit test in test/unit/. SIGPIPE is ignored as in every applet:
// a child or peer that goes away must surface as EPIPE, not kill the test binary.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "event/loop.hpp"

int main(int argc, char** argv) {
  cx::event::ignore_sigpipe();
  return Catch::Session().run(argc, argv);
}
