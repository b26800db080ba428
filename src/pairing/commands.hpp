// The dispatcher's enrolment and registry commands (dispatcher-and-api §4.9-4.15, §4.19;
// pairing-mode itself is run_pairing_mode in pairing/mode.hpp):
// each returns the process exit status and prints exactly what the original prints.
#pragma once

#include "conf/dispatcher_cli.hpp"

namespace cx::pairing {

int cmd_setup_ca(const conf::DispatcherArgs& args);
int cmd_setup_ctrl_exec(const conf::DispatcherArgs& args);
int cmd_list_requests(const conf::DispatcherArgs& args);
int cmd_approve(const conf::DispatcherArgs& args);
int cmd_deny(const conf::DispatcherArgs& args);
int cmd_list_agents(const conf::DispatcherArgs& args);
int cmd_edit_agent(const conf::DispatcherArgs& args);
int cmd_unpair(const conf::DispatcherArgs& args);

} // namespace cx::pairing
