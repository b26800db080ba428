// ctrl-exec-api: not implemented yet; see the issue tracker.
#include "applets/applets.hpp"

int api_main(int argc, char** argv) {
  return applet_not_built("ctrl-exec-api", argc, argv);
}
