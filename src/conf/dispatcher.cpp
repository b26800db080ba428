// The typed dispatcher config; see dispatcher.hpp.
#include "conf/dispatcher.hpp"

#include "base/paths.hpp"
#include "base/strings.hpp"

namespace cx::conf {

namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

} // namespace

std::string sanitize_dispatcher_id(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  for (char c : id)
    out += (is_alnum(c) || c == '.' || c == '_' || c == '-') ? c : '-';
  size_t lead = 0;
  while (lead < out.size() && !is_alnum(out[lead]))
    ++lead;
  out.erase(0, lead);
  if (out.size() > 64) out.resize(64);
  return out.empty() ? "dispatcher" : out;
}

DispatcherConfigLoad make_dispatcher_config(const FlatConfig& conf, std::string_view hostname) {
  DispatcherConfigLoad load;
  DispatcherConfig& c = load.config;
  c.raw = conf;
  c.ca_dir = paths::dispatcher_etc();
  c.rotation_file = paths::rotation_file();
  c.registry_dir = paths::registry_dir();

  read_string(conf, "cert", c.cert);
  read_string(conf, "key", c.key);
  read_string(conf, "ca", c.ca);
  read_string(conf, "api_bind", c.api_bind);
  read_string(conf, "ca_dir", c.ca_dir);
  read_string(conf, "service_user", c.service_user);
  read_string(conf, "rotation_file", c.rotation_file);
  read_string(conf, "registry_dir", c.registry_dir);
  read_string(conf, "auth_hook", c.auth_hook, /*empty_is_unset=*/true);
  read_string(conf, "api_cert", c.api_cert, /*empty_is_unset=*/true);
  read_string(conf, "api_key", c.api_key, /*empty_is_unset=*/true);
  read_string(conf, "state_backend", c.state_backend);
  c.state_backend = to_lower(trim(c.state_backend));
  read_string(conf, "etcd_endpoints", c.etcd_endpoints);
  read_string(conf, "etcd_prefix", c.etcd_prefix);
  read_string(conf, "etcd_ca", c.etcd_ca, /*empty_is_unset=*/true);
  read_string(conf, "etcd_cert", c.etcd_cert, /*empty_is_unset=*/true);
  read_string(conf, "etcd_key", c.etcd_key, /*empty_is_unset=*/true);

  const std::string* id = find_value(conf, "dispatcher_id");
  c.dispatcher_id = sanitize_dispatcher_id(id ? std::string_view(*id) : hostname);

  if (auto v = find_value(conf, "api_auth_default")) c.api_auth_allow = to_lower(*v) == "allow";
  if (auto v = find_value(conf, "auth_deny_generic")) {
    std::string_view s = *v;
    while (!s.empty() && is_perl_space(s.front()))
      s.remove_prefix(1);
    c.auth_deny_generic = starts_with_1_or_y(s);
  }
  if (auto v = find_value(conf, "pairing_rate_limit_disable"))
    c.pairing_rate_limit_disable = starts_with_1_or_y(*v);
  if (auto v = find_value(conf, "pairing_rate_limit_volume")) {
    // The original falls back to the defaults here without a word; so do we.
    if (auto r = parse_rate_limit(*v)) c.pairing_rate_limit = *r;
  }

  IntReader ints(conf, load.warnings);
  ints.read_into("auth_hook_timeout", c.auth_hook_timeout, 0);
  ints.read_into("api_port", c.api_port, 1, 65535);
  ints.read_into("api_max_children", c.api_max_children, 1);
  // `read_timeout // timeout // 60`: the deprecated alias counts only when read_timeout is
  // absent, even if read_timeout is present but invalid.
  ints.read_into(find_value(conf, "read_timeout") ? "read_timeout" : "timeout", c.read_timeout, 1);
  ints.read_into("max_parallel", c.max_parallel, INT64_MIN);
  if (c.max_parallel < 1) c.max_parallel = 1;
  c.cert_days = ints.read("cert_days", 1, INT64_MAX, "the default");
  ints.read_into("cert_renewal_days", c.cert_renewal_days, 0);
  ints.read_into("cert_overlap_days", c.cert_overlap_days, 0);
  ints.read_into("cert_check_interval", c.cert_check_interval, 1);
  ints.read_into("pairing_timeout", c.pairing_timeout, INT64_MIN);
  ints.read_into("pairing_max_queue", c.pairing_max_queue, 0);
  ints.read_into("etcd_dial_timeout", c.etcd_dial_timeout, 1, 600);
  ints.read_into("etcd_timeout", c.etcd_timeout, 1, 600);
  ints.read_into("etcd_lock_ttl", c.etcd_lock_ttl, 2, 3600);
  return load;
}

std::string state_backend_error(const DispatcherConfig& c) {
  if (c.state_backend == "files") return "";
  if (c.state_backend != "etcd")
    return "state_backend: '" + c.state_backend + "' is not files or etcd";
  if (trim(c.etcd_endpoints).empty())
    return "etcd_endpoints: required with state_backend = etcd (http://host:2379,...)";
  if (c.etcd_cert.has_value() != c.etcd_key.has_value())
    return c.etcd_cert ? "etcd_key: required with etcd_cert" : "etcd_cert: required with etcd_key";
  if (c.etcd_prefix.empty() || c.etcd_prefix.front() != '/')
    return "etcd_prefix: must start with '/' (default /ctrl-exec/)";
  return "";
}

Result<DispatcherConfigLoad> load_dispatcher_config(const std::string& path,
                                                    std::string_view hostname, bool lenient) {
  CX_ASSIGN_OR_RETURN(FlatConfig conf, lenient ? load_flat(path) : load_flat_required(path));
  DispatcherConfigLoad load = make_dispatcher_config(conf, hostname);
  load.config.path = path;
  if (std::string e = state_backend_error(load.config); !e.empty())
    return error(ErrorKind::config, "Config error in '" + path + "': " + e);
  return load;
}

} // namespace cx::conf
