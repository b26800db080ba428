// ctrl-exec-pairing: not implemented yet; see the issue tracker.
#include "applets/applets.hpp"

int pairing_main(int argc, char** argv) {
  return applet_not_built("ctrl-exec-pairing", argc, argv);
}
