// See state_backend.hpp.
#include "state_backend.hpp"

#include "base/strings.hpp"
#include "cli/cli.hpp"
#include "etcdkv/open.hpp"
#include "state/kv.hpp"

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

// A command that cannot reach the store fails at once, and says so, rather than reading an
// empty registry or queue out of a failed read later.
Status open_and_probe(const conf::DispatcherConfig& c) {
  CX_TRY(open_from(c));
  state::KvStore* kv = state::shared_kv();
  if (!kv) return {};
  auto got = kv->get("probe");
  if (!got.ok()) return error(got.kind(), "Cannot reach the state store: " + got.message());
  return {};
}

} // namespace

void install_state_backend_hook(bool probe) {
  cli::on_config_loaded() = probe ? open_and_probe : open_from;
}

} // namespace cx::applets
