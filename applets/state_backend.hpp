// Opening the dispatcher's state backend from ctrl-exec.conf (etcdkv/open.hpp), installed by
// the dispatcher, pairing and API applets as the hook every loaded config goes through
// (cli::on_config_loaded).
#pragma once

namespace cx::applets {

void install_state_backend_hook();

} // namespace cx::applets
