// The dispatcher commands built on the fan-out engine (dispatcher-and-api §4): each returns
// the process exit status and prints exactly what the original prints.
#pragma once

#include "cli/dispatcher_args.hpp"

namespace cx::engine {

cli::Command cmd_run, cmd_ping, cmd_status, cmd_wait, cmd_list_locks, cmd_serial_status,
    cmd_maintain, cmd_rotate_cert, cmd_state;

} // namespace cx::engine
