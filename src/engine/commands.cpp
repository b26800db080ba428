// Placeholder until the engine lands: every command says so and fails. Never pretends.
#include "engine/commands.hpp"

#include <cstdio>

namespace cx::engine {
namespace {
int not_built(const conf::DispatcherArgs& a) {
  std::fprintf(stderr, "ctrl-exec-dispatcher: '%s' is not built yet in this version\n",
               a.mode.c_str());
  return 1;
}
} // namespace
int cmd_run(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_ping(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_status(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_wait(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_list_locks(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_serial_status(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_maintain(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_rotate_cert(const conf::DispatcherArgs& a) {
  return not_built(a);
}
} // namespace cx::engine
