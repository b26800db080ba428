// ctrl-exec-dispatcher: not implemented yet; see the issue tracker.
#include "applets/applets.hpp"

int dispatcher_main(int argc, char** argv) {
  return applet_not_built("ctrl-exec-dispatcher", argc, argv);
}
