// Signing with the CA directory; see ca_store.hpp.
#include "pki/ca_store.hpp"

#include "base/files.hpp"
#include "pki/serial.hpp"

namespace cx::pki {

Result<Issued> sign_with_store(const CaStore& store, std::string_view csr_pem, IssueOptions opts,
                               const SerialClaim& claim) {
  if (!path_exists(store.key_path()))
    return error("CA key not found at '" + store.key_path() + "'");
  CX_ASSIGN_OR_RETURN(std::string ca_key, read_file(store.key_path(), 1u << 20));
  CX_ASSIGN_OR_RETURN(std::string ca_cert, read_file(store.cert_path(), 1u << 20));

  // The original flocks ca.serial around `openssl x509 -CAserial`. OpenSSL, and
  // write_ca_serial() here, replace the file by rename, so a process that opens ca.serial
  // after the rename locks the new inode and is not excluded by a holder of the old one. The
  // lock therefore only orders writers of ca.serial; serial uniqueness does not depend on it,
  // because every serial is 128 random bits (new_serial()), which is what makes concurrent
  // signing on HA nodes safe. The lock is kept so a Perl dispatcher on the same directory sees
  // the protocol it expects.
  FileLock lock;
  if (auto st = lock.lock(store.serial_path(), true, 0600); !st.ok())
    return error("cannot lock the CA serial: " + st.message());
  opts.serial = new_serial();
  for (int attempt = 0; claim; ++attempt) {
    CX_ASSIGN_OR_RETURN(bool mine, claim(opts.serial));
    if (mine) break;
    if (attempt == 8) return error("cannot claim a free certificate serial");
    opts.serial = new_serial();
  }
  CX_ASSIGN_OR_RETURN(std::string cert, sign_csr(csr_pem, ca_cert, ca_key, opts));
  CX_TRY(write_ca_serial(store.serial_path(), opts.serial, 0600));
  return Issued{std::move(cert), std::move(ca_cert), std::move(opts.serial)};
}

} // namespace cx::pki
