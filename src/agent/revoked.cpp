// The revocation list; see revoked.hpp.
#include "agent/revoked.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "pki/serial.hpp"

namespace cx::agent {

RevokedList parse_revoked(std::string_view text) {
  RevokedList list;
  for (const auto& raw : split(text, '\n')) {
    std::string_view line = raw;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    std::string key = pki::canon_serial(line);
    if (key.empty() || key == "nan") continue;
    list.add(std::move(key));
  }
  return list;
}

Result<RevokedLoad> load_revoked(const std::string& path) {
  RevokedLoad load;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
    load.absent = true;
    load.absent_reason = errno_text(ENOENT);
    return load;
  }
  auto text = read_file(path, 16u << 20);
  if (!text.ok()) return text.status();
  load.list = parse_revoked(*text);
  return load;
}

} // namespace cx::agent
