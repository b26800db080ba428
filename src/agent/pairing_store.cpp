// What an approved pairing leaves on the agent; see pairing_store.hpp.
#include "agent/pairing_store.hpp"

#include <unistd.h>

#include "agent/trusted_map.hpp"
#include "base/files.hpp"
#include "pki/cert.hpp"

namespace cx::agent {
namespace {

// Writes a file for the agent (root:ctrl-exec-agent when that group exists and we are root).
Status store(const std::string& path, const std::string& data, mode_t mode) {
  WriteOptions w;
  w.mode = mode;
  if (::geteuid() == 0) {
    if (auto gid = lookup_group("ctrl-exec-agent")) {
      w.uid = 0;
      w.gid = *gid;
    }
  }
  return write_file_atomic(path, data, w);
}

// The state directory for the map: 0750, owned by ctrl-exec-agent when that user exists.
Status make_agent_state_dir(const std::string& dir) {
  if (is_directory(dir)) return {};
  CX_TRY(make_dirs(dir, 0750));
  if (::geteuid() == 0) {
    if (auto u = lookup_user("ctrl-exec-agent")) {
      if (::chown(dir.c_str(), u->uid, u->gid) != 0) {
        // Owned by root instead; the agent can still read the map (0644).
      }
    }
  }
  return {};
}

} // namespace

Status store_pairing(const conf::AgentPairingFiles& f, const std::string& key_pem,
                     const proto::PairResponse& r) {
  auto match = pki::key_matches_cert(key_pem, r.cert);
  if (!match.ok()) return error("the certificate received cannot be read: " + match.message());
  if (!*match) return error("the certificate received does not match this agent's key");
  // The key and its cert first, the trusted map last: whoever sees the new dispatcher trusted
  // (an operator's script, `serve` started at once) finds a matching key and cert in place.
  CX_TRY(store(f.key, key_pem, 0640));
  CX_TRY(store(f.cert, r.cert, 0640));
  CX_TRY(store(f.ca, r.ca, 0644));
  if (!r.dispatcher_serial.empty()) {
    CX_TRY(make_agent_state_dir(dirname(f.trusted_map)));
    std::string id = r.dispatcher_id.empty() ? r.dispatcher_serial : r.dispatcher_id;
    CX_TRY(add_trusted_dispatcher(f.trusted_map, r.dispatcher_serial, id));
  }
  return {};
}

} // namespace cx::agent
