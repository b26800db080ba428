// Which backend holds the dispatcher's shared state (issue 17): the files (the default), or an
// etcd cluster (etcd_kv.hpp) installed as the shared store of state/kv.hpp. The applets open it
// once, right after loading ctrl-exec.conf (cli::on_config_loaded), before any command touches
// the state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.hpp"

namespace cx::etcdkv {

struct BackendOptions {
  std::string kind = "files"; // "files" or "etcd"
  std::vector<std::string> etcd_endpoints;
  std::string etcd_prefix = "/ctrl-exec/";
  std::optional<std::string> etcd_ca, etcd_cert, etcd_key;
  int64_t dial_timeout_s = 2, timeout_s = 5, lock_ttl_s = 10;
};

// Installs the store for this process (set_shared_kv), or none for the files. Opening makes no
// connection: an unreachable cluster is reported by the first operation, naming it. Errors
// name the key at fault (an endpoint that is not http(s)://host:port, ...).
Status open_backend(const BackendOptions& options);

} // namespace cx::etcdkv
