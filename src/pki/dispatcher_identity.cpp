// The dispatcher's identity (key + certificate); see dispatcher_identity.hpp.
#include "pki/dispatcher_identity.hpp"

#include <unistd.h>

#include "base/files.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/serial.hpp"

namespace cx::pki {

Result<DispatcherIdentity> issue_dispatcher_identity(const CaStore& store, const KeySpec& spec,
                                                     unsigned days) {
  if (!path_exists(store.key_path()))
    return error("CA key not found at '" + store.key_path() + "' - run setup-ca first");
  DispatcherIdentity id;
  auto key = generate_key(spec);
  if (!key.ok()) return error("cannot generate the dispatcher key: " + key.message());
  auto csr = create_csr(*key, kDispatcherCn);
  if (!csr.ok()) return error("cannot create the dispatcher CSR: " + csr.message());
  IssueOptions opts;
  opts.days = days;
  auto issued = sign_with_store(store, *csr, opts);
  if (!issued.ok()) return error("cannot sign the dispatcher certificate: " + issued.message());
  id.key_pem = std::move(*key);
  id.cert_pem = std::move(issued->cert_pem);
  id.serial = std::move(issued->serial);
  return id;
}

Status write_dispatcher_identity(const DispatcherIdentity& id, const std::string& cert_path,
                                 const std::string& key_path, const std::string& service_user) {
  CX_TRY(make_dirs(dirname(key_path), 0750));
  CX_TRY(make_dirs(dirname(cert_path), 0750));
  WriteOptions key_opts;
  key_opts.mode = 0600;
  if (::geteuid() == 0) {
    if (auto u = lookup_user(service_user)) {
      key_opts.uid = u->uid;
      key_opts.gid = u->gid;
    }
  }
  WriteOptions cert_opts;
  cert_opts.mode = 0644;
  CX_TRY(write_file_atomic(key_path, id.key_pem, key_opts));
  return write_file_atomic(cert_path, id.cert_pem, cert_opts);
}

std::string served_serial(const std::string& cert_path) {
  auto pem = read_file(cert_path, 1u << 20);
  if (!pem.ok()) return {};
  auto info = cert_info(*pem);
  if (!info.ok()) return {};
  return canon_serial(info->serial);
}

KeySpec key_spec_of(const std::string& key_path, const KeySpec& fallback) {
  auto pem = read_file(key_path, 1u << 20);
  if (!pem.ok()) return fallback;
  auto info = key_info(*pem);
  if (!info.ok()) return fallback;
  KeySpec spec;
  spec.type = info->type;
  if (info->type == KeyType::rsa)
    spec.rsa_bits = info->bits >= 2048 && info->bits <= 4096 ? info->bits : 4096;
  return spec;
}

} // namespace cx::pki
