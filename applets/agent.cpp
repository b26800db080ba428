// ctrl-exec-agent: not implemented yet; see the issue tracker.
#include "applets/applets.hpp"

int agent_main(int argc, char** argv) {
  return applet_not_built("ctrl-exec-agent", argc, argv);
}
