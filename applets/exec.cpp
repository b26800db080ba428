// ctrl-exec-exec: not implemented yet; see the issue tracker.
#include "applets/applets.hpp"

int exec_main(int argc, char** argv) {
  return applet_not_built("ctrl-exec-exec", argc, argv);
}
