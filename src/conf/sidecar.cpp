// Schema sidecars; see sidecar.hpp.
#include "conf/sidecar.hpp"

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <sys/stat.h>

#include <cerrno>

#include "base/files.hpp"
#include "json/writer.hpp"

namespace cx::conf {

namespace {

bool valid_version(std::string_view v) {
  if (v.empty() || v.size() > 64 || v.substr(0, 7) == "sha256:") return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void sha256(const std::string& data, unsigned char out[32]) {
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  mbedtls_sha256(in, data.size(), out, 0);
#else
  mbedtls_sha256_ret(in, data.size(), out, 0);
#endif
}

} // namespace

std::string derived_schema_version(const json::Value& body) {
  unsigned char digest[32];
  sha256(json::canonical(body), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (int i = 0; i < 6; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string schema_version(const json::Value& body, std::optional<std::string>* derive_reason) {
  const json::Value* v = json::find(body, "version");
  if (v && !v->IsNull()) {
    auto s = json::scalar_string(*v);
    if (s && valid_version(*s)) return *s;
    if (derive_reason)
      *derive_reason = s ? "invalid version '" + *s + "'" : std::string("version is not a scalar");
  }
  return derived_schema_version(body);
}

SidecarLoad load_sidecar(const std::string& script_path) {
  SidecarLoad load;
  std::string path = script_path + ".schema.json";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR) load.skip_reason = "unreadable: " + errno_text(errno);
    return load;
  }
  if (!S_ISREG(st.st_mode)) {
    load.skip_reason = "unreadable: not a regular file";
    return load;
  }
  auto too_large = [&](uint64_t size) {
    return "too large (" + std::to_string(size) + " bytes, limit " +
           std::to_string(kMaxSidecarBytes) + ")";
  };
  if (static_cast<uint64_t>(st.st_size) > kMaxSidecarBytes) {
    load.skip_reason = too_large(static_cast<uint64_t>(st.st_size));
    return load;
  }
  auto text = read_file(path, kMaxSidecarBytes);
  if (!text.ok()) {
    // The file may have grown since stat(); otherwise it could not be opened or read.
    load.skip_reason = "unreadable: " + text.message();
    return load;
  }
  auto doc = json::parse(*text);
  if (!doc.ok()) {
    load.skip_reason = doc.message();
    return load;
  }
  if (!doc->IsObject()) {
    load.skip_reason = "not a JSON object";
    return load;
  }
  Sidecar sc;
  sc.schema_version = schema_version(*doc, &load.derive_reason);
  sc.schema_json = json::to_string(*doc);
  load.sidecar = std::move(sc);
  return load;
}

SidecarSet load_sidecars(const Allowlist& scripts) {
  SidecarSet set;
  for (const auto& [name, entry] : scripts) {
    SidecarLoad l = load_sidecar(entry.path);
    if (l.skip_reason) set.events.push_back({"schema-skip", name, *l.skip_reason});
    if (l.derive_reason) set.events.push_back({"schema-version-derive", name, *l.derive_reason});
    if (l.sidecar) set.by_script.emplace(name, std::move(*l.sidecar));
  }
  return set;
}

} // namespace cx::conf
