// Opening the dispatcher's state backend from ctrl-exec.conf (etcdkv/open.hpp), installed by
// the dispatcher, pairing and API applets as the hook every loaded config goes through
// (cli::on_config_loaded).
#pragma once

namespace cx::applets {

// `probe`: a command-line applet checks at once that the store answers (the API does not: it
// starts, answers 503 while the store is down, and serves again when it is back).
void install_state_backend_hook(bool probe);

} // namespace cx::applets
