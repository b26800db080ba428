// The state backend; see backend.hpp.
#include "state/backend.hpp"

#include "state/kv.hpp"

namespace cx::state {

Status open_backend(const BackendOptions& o) {
  if (o.kind == "files") {
    set_shared_kv(nullptr);
    return {};
  }
  if (o.kind != "etcd")
    return error(ErrorKind::config, "state_backend: '" + o.kind + "' is not files or etcd");
  // The etcd client is not in this build yet: refusing is the only honest answer, since
  // carrying on with the files would split the fleet's state without a word.
  return error(ErrorKind::config,
               "state_backend = etcd: this build of ctrl-exec has no etcd client yet");
}

} // namespace cx::state
