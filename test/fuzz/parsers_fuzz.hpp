// Invariants for the parsers that read files an attacker may be able to write or bytes from the
// network: the INI forms (ctrl-exec.conf, agent.conf, scripts.conf), JSON bodies, and PEM
// (CSRs from pairing and renewal, certificates, serials from maps and the wire). Shared by the
// libFuzzer targets and by the corpus replay in the unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/strings.hpp"
#include "conf/allowlist.hpp"
#include "conf/flat.hpp"
#include "conf/ini.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/serial.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::fuzz {

// Returns "" when every invariant holds, else what broke.
inline std::string check_config_text(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const auto& [key, value] : conf::parse_flat(text)) {
    if (key.empty()) return "flat: empty key";
    for (char c : key)
      if (!is_word_char(c)) return "flat: key with a non-word character: " + key;
    // Perl's `\s*=\s*(.+?)\s*$` leaves one whitespace character when that is all there is
    // ("c = \t" gives "\t"); otherwise values are trimmed and non-empty.
    if (value.empty()) return "flat: empty value";
    if (trim(value) != value && value.size() != 1) return "flat: untrimmed value";
  }
  auto ini = conf::parse_sectioned(text, "/fuzz/agent.conf");
  if (!ini.ok() && ini.message().find("/fuzz/agent.conf") == std::string::npos)
    return "sectioned: error does not name the file: " + ini.message();
  auto allow = conf::parse_allowlist(text, "/fuzz/scripts.conf");
  for (const auto& [name, entry] : allow.scripts) {
    if (!is_script_name(name)) return "allowlist: bad name accepted: " + name;
    if (entry.path.empty() || entry.path[0] != '/') return "allowlist: relative path accepted";
  }
  return "";
}

inline std::string check_json_text(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = json::parse(text);
  if (!doc.ok()) {
    if (doc.message().rfind("invalid JSON", 0) != 0) return "unexpected error text";
    return "";
  }
  // Whatever we accept, we can write back, and our output is a fixed point from the second
  // write on (the first may differ: Perl prints -0.0 as "-0", which reads back as integer 0).
  std::string once = json::to_string(*doc);
  if (!is_valid_utf8(once)) return "writer produced invalid UTF-8";
  auto again = json::parse(once);
  if (!again.ok()) return "writer output does not parse: " + again.message();
  std::string twice = json::to_string(*again);
  auto third = json::parse(twice);
  if (!third.ok() || json::to_string(*third) != twice) return "write/parse is not stable";
  // The canonical form is stable from its second application on, for the same -0 reason.
  auto canon_doc = json::parse(json::canonical(*doc));
  if (!canon_doc.ok()) return "canonical output does not parse";
  std::string canon = json::canonical(*canon_doc);
  auto canon_again = json::parse(canon);
  if (!canon_again.ok() || json::canonical(*canon_again) != canon)
    return "canonical form is not stable";
  (void)json::is_truthy(*doc);
  if (doc->IsObject()) {
    (void)json::get_string_or(*doc, "script", "");
    (void)json::get_string_array_or(*doc, "args");
    (void)json::get_int64_or(*doc, "port", 0);
  }
  return "";
}

inline std::string check_pem_text(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string code = pki::pairing_code(text);
  if (code.size() != 6 || !is_digits(code)) return "pairing code is not 6 digits: " + code;
  auto csr = pki::validate_csr(text);
  if (csr.ok() && csr->cn.empty()) return "a CSR without a CN was accepted";
  auto cert = pki::cert_info(text);
  if (cert.ok()) {
    const std::string& s = cert->serial;
    std::string_view digits = (!s.empty() && s[0] == '-') ? std::string_view(s).substr(1) : s;
    if (digits.empty() || digits.size() % 2 || !is_hex(digits) || to_upper(digits) != digits)
      return "certificate serial is not upper-case whole-byte hex: " + s;
  }
  // Serials come from map files and the wire: any bytes, bounded work, no crash.
  (void)pki::canon_serial(text.substr(0, 5000));
  return "";
}

} // namespace cx::fuzz
