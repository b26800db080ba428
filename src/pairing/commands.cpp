// Placeholder until pairing lands: every command says so and fails. Never pretends.
#include "pairing/commands.hpp"

#include <cstdio>

#include "pairing/requester.hpp"

namespace cx::pairing {
namespace {
int not_built(const conf::DispatcherArgs& a) {
  std::fprintf(stderr, "ctrl-exec-dispatcher: '%s' is not built yet in this version\n",
               a.mode.c_str());
  return 1;
}
} // namespace
int cmd_setup_ca(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_setup_ctrl_exec(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_pairing_mode(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_list_requests(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_approve(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_deny(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_list_agents(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_edit_agent(const conf::DispatcherArgs& a) {
  return not_built(a);
}
int cmd_unpair(const conf::DispatcherArgs& a) {
  return not_built(a);
}

int request_pairing(const RequestPairingOptions&) {
  std::fprintf(stderr, "ctrl-exec-agent: request-pairing is not built yet in this version\n");
  return 1;
}
} // namespace cx::pairing
