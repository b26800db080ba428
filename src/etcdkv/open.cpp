// The state backend; see open.hpp.
#include "etcdkv/open.hpp"

#include "etcdkv/etcd_kv.hpp"
#include "state/kv.hpp"

namespace cx::etcdkv {

Status open_backend(const BackendOptions& o) {
  if (o.kind == "files") {
    state::set_shared_kv(nullptr);
    return {};
  }
  if (o.kind != "etcd")
    return error(ErrorKind::config, "state_backend: '" + o.kind + "' is not files or etcd");
  Options eo;
  eo.endpoints = o.etcd_endpoints;
  eo.prefix = o.etcd_prefix;
  eo.ca = o.etcd_ca.value_or("");
  eo.cert = o.etcd_cert.value_or("");
  eo.key = o.etcd_key.value_or("");
  eo.dial_timeout_ms = static_cast<uint64_t>(o.dial_timeout_s) * 1000;
  eo.timeout_ms = static_cast<uint64_t>(o.timeout_s) * 1000;
  CX_ASSIGN_OR_RETURN(auto kv, EtcdKv::open(eo));
  state::KvSettings settings;
  settings.lock_ttl_s = o.lock_ttl_s;
  state::set_shared_kv(std::move(kv), settings);
  return {};
}

} // namespace cx::etcdkv
