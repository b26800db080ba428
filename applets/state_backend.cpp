// See state_backend.hpp.
#include "state_backend.hpp"

#include "base/strings.hpp"
#include "cli/cli.hpp"
#include "etcdkv/open.hpp"

namespace cx::applets {

namespace {

Status open_from(const conf::DispatcherConfig& c) {
  etcdkv::BackendOptions o;
  o.kind = c.state_backend;
  for (const std::string& e : split(c.etcd_endpoints, ','))
    if (!trim(e).empty()) o.etcd_endpoints.emplace_back(trim(e));
  o.etcd_prefix = c.etcd_prefix;
  o.etcd_ca = c.etcd_ca;
  o.etcd_cert = c.etcd_cert;
  o.etcd_key = c.etcd_key;
  o.dial_timeout_s = c.etcd_dial_timeout;
  o.timeout_s = c.etcd_timeout;
  o.lock_ttl_s = c.etcd_lock_ttl;
  return etcdkv::open_backend(o);
}

} // namespace

void install_state_backend_hook() {
  cli::on_config_loaded() = open_from;
}

} // namespace cx::applets
