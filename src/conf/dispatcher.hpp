// The typed dispatcher configuration (ctrl-exec.conf, spec dispatcher-and-api §2.2): every key
// with its default and the original's per-key boolean rule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "conf/common.hpp"
#include "conf/flat.hpp"

namespace cx::conf {

struct DispatcherConfig {
  std::string path;          // the file it was loaded from ("" when built from a map)
  std::string cert, key, ca; // required by the strict load; may be empty after a lenient one
  std::string dispatcher_id; // sanitised; see sanitize_dispatcher_id()
  std::optional<std::string> auth_hook; // empty counts as unset
  int64_t auth_hook_timeout = 10;       // seconds; 0 disables the timer
  bool api_auth_allow = false;          // api_auth_default, lowercased, == "allow"
  bool auth_deny_generic = false;       // `^\s*[1y]`, case-insensitive
  int api_port = 7445;
  std::string api_bind = "127.0.0.1";
  std::optional<std::string> api_cert, api_key;
  int64_t api_max_children = 64;
  int64_t read_timeout = 60; // read_timeout // timeout // 60
  int64_t max_parallel = 64; // values < 1 become 1
  std::optional<int64_t> cert_days;
  int64_t cert_renewal_days = 90;
  int64_t cert_overlap_days = 30;
  int64_t cert_check_interval = 14400;
  std::string ca_dir; // default cx::paths::dispatcher_etc()
  std::string service_user = "ctrl-exec";
  // The pairing-mode CLI range-checks this (1-600) with its own messages; a value that is not
  // an integer at all is replaced by the default here, and `raw` still holds the text.
  int64_t pairing_timeout = 600;
  int64_t pairing_max_queue = 10;
  RateLimit pairing_rate_limit = kDefaultVolumeLimit; // malformed: defaults, silently
  bool pairing_rate_limit_disable = false;            // `^[1y]`, case-insensitive
  std::string rotation_file;                          // default cx::paths::rotation_file()
  std::string registry_dir;                           // default cx::paths::registry_dir()
  // Where the shared state lives (ours, issue 17): "files" (the default: /var/lib/ctrl-exec)
  // or "etcd", with the keys below; cli/state_backend.hpp opens it.
  std::string state_backend = "files";
  std::string etcd_endpoints;                              // http(s)://host:port, comma-separated
  std::string etcd_prefix = "/ctrl-exec/";                 // every key under it
  std::optional<std::string> etcd_ca, etcd_cert, etcd_key; // TLS to etcd
  int64_t etcd_dial_timeout = 2;                           // seconds, per endpoint tried
  int64_t etcd_timeout = 5;                                // seconds, per request
  int64_t etcd_lock_ttl = 10; // seconds: a dead holder's locks go after this
  FlatConfig raw;             // every key as parsed, unknown ones included

  // cert_days means different defaults to its two users.
  int64_t renewal_cert_days() const { return cert_days.value_or(365); }
  int64_t rotation_cert_days() const { return cert_days.value_or(825); }
};

struct DispatcherConfigLoad {
  DispatcherConfig config;
  std::vector<ConfigWarning> warnings;
};

// The original's dispatcher_id rule: each byte outside [A-Za-z0-9._-] becomes '-', leading
// non-alphanumerics are stripped, the result is cut to 64 characters, and an empty result
// becomes "dispatcher".
std::string sanitize_dispatcher_id(std::string_view id);

// Builds the typed config from parsed keys. `hostname` is the default dispatcher_id (callers
// pass gethostname()). Numeric values that are not integers (or are out of a key's range)
// keep the default and add a warning naming the key: the original would have used Perl's
// numeric conversion of the junk (usually 0), which is never what the operator meant.
DispatcherConfigLoad make_dispatcher_config(const FlatConfig& conf, std::string_view hostname);

// The state keys' errors, each naming its key: state_backend other than files or etcd, etcd
// without etcd_endpoints, etcd_cert without etcd_key (or the other way round), an empty or
// relative etcd_prefix. "" when they are usable.
std::string state_backend_error(const DispatcherConfig& c);

// Loads `path`: strictly (cert/key/ca required, see check_required_tls_keys) or leniently.
// Both fail on state_backend_error.
Result<DispatcherConfigLoad>
load_dispatcher_config(const std::string& path, std::string_view hostname, bool lenient = false);

} // namespace cx::conf
