// The dispatcher's enrolment and registry commands (dispatcher-and-api §4.9-4.15, §4.19;
// pairing-mode itself is run_pairing_mode in pairing/mode.hpp):
// each returns the process exit status and prints exactly what the original prints.
#pragma once

#include "cli/dispatcher_args.hpp"

namespace cx::pairing {

cli::Command cmd_setup_ca, cmd_setup_ctrl_exec, cmd_list_requests, cmd_approve, cmd_deny,
    cmd_list_agents, cmd_edit_agent, cmd_unpair;

} // namespace cx::pairing
