// The dispatcher's own identity: a key and a `/CN=ctrl-exec-dispatcher` certificate signed by
// its CA, made by setup-ctrl-exec (dispatcher-and-api §4.13) and by rotation (§9.1), and the
// files they live in.
#pragma once

#include <string>

#include "base/status.hpp"
#include "pki/ca_store.hpp"
#include "pki/key.hpp"

namespace cx::pki {

inline constexpr const char* kDispatcherCn = "ctrl-exec-dispatcher";

struct DispatcherIdentity {
  std::string key_pem;
  std::string cert_pem;
  std::string serial; // lowercase hex, as issued
};

// A new key of `spec` and its certificate, signed under the ca.serial lock for `days` days.
// Nothing is written. Errors say which step failed.
Result<DispatcherIdentity> issue_dispatcher_identity(const CaStore& store, const KeySpec& spec,
                                                     unsigned days);

// Writes the key (mode 0600, given to `service_user` and its primary group when we run as root
// and that user exists) and then the cert (0644), each atomically, creating missing parent
// directories 0750. The key goes first: a cert without its key would be unusable.
Status write_dispatcher_identity(const DispatcherIdentity& id, const std::string& cert_path,
                                 const std::string& key_path, const std::string& service_user);

// canon() of the serial of the certificate at `cert_path`, as `openssl x509 -serial` prints it:
// what the original sends to agents and what a Perl or C++ agent compares (agent-and-wire
// §4.2.1). "" when the file cannot be read.
std::string served_serial(const std::string& cert_path);

// The type of an existing key file (rotation keeps it); `fallback` when it cannot be read.
KeySpec key_spec_of(const std::string& key_path, const KeySpec& fallback);

} // namespace cx::pki
