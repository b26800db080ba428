// The dispatcher's CA as files in its CA directory (ca.key, ca.crt, ca.serial) and signing with
// it the way every signer must: under the ca.serial lock, recording the issued serial there.
// Used by approve and setup-ctrl-exec (src/pairing) and renewal/rotation (src/engine).
#pragma once

#include <functional>

#include <string>
#include <string_view>

#include "base/status.hpp"
#include "pki/ca.hpp"

namespace cx::pki {

struct CaStore {
  std::string dir; // the CA directory: ca_dir in ctrl-exec.conf, default /etc/ctrl-exec

  std::string key_path() const { return dir + "/ca.key"; }
  std::string cert_path() const { return dir + "/ca.crt"; }
  std::string serial_path() const { return dir + "/ca.serial"; }
};

struct Issued {
  std::string cert_pem;
  std::string ca_pem; // the CA certificate that signed it, as read from ca.crt
  std::string serial; // lowercase hex, as new_serial() drew it
};

// Signs `csr_pem` with the store's CA (sign_csr validates it first). `opts.serial` is ignored:
// a fresh new_serial() is drawn. Holds an exclusive flock on ca.serial from before the draw
// until the serial has been recorded in it (OpenSSL's `-CAserial` form, so a Perl dispatcher
// sharing the directory continues from it). Errors name the file: "CA key not found at '<p>'",
// "cannot read '<p>': ...", or the CSR refusal.
// `claim` (optional) is asked whether a freshly drawn serial may be used: false draws another,
// an error stops the signing. Dispatchers sharing a state store claim each serial there, so
// that no two ever issue the same one (state/serials.hpp).
using SerialClaim = std::function<Result<bool>(const std::string& serial_hex)>;
Result<Issued> sign_with_store(const CaStore& store, std::string_view csr_pem, IssueOptions opts,
                               const SerialClaim& claim = nullptr);

} // namespace cx::pki
