// The dispatcher commands built on the fan-out engine (dispatcher-and-api §4): each returns
// the process exit status and prints exactly what the original prints.
#pragma once

#include "conf/dispatcher_cli.hpp"

namespace cx::engine {

int cmd_run(const conf::DispatcherArgs& args);
int cmd_ping(const conf::DispatcherArgs& args);
int cmd_status(const conf::DispatcherArgs& args);
int cmd_wait(const conf::DispatcherArgs& args);
int cmd_list_locks(const conf::DispatcherArgs& args);
int cmd_serial_status(const conf::DispatcherArgs& args);
int cmd_maintain(const conf::DispatcherArgs& args);
int cmd_rotate_cert(const conf::DispatcherArgs& args);

} // namespace cx::engine
