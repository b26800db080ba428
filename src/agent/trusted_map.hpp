// The trusted-dispatcher map (agent-and-wire §4.2): which client-certificate serials the agent
// obeys, and the dispatcher id each one stands for. Used by the agent (lookup, /rotate-serial)
// and by request-pairing (adding the approving dispatcher).
//
// Serials and keys (the §4.2.1 QUIRK, "C++ agent" recommendation). A lookup key is
// canon(peer serial), computed exactly once. A serial received on the wire (pairing's
// `dispatcher_serial`, /rotate-serial's `serial`) is what a Perl dispatcher computes as
// canon(its serial hex), so it is stored as received (lower-case hex, leading zeros dropped)
// and never read as decimal a second time. Map lines are always read with canon, bit-exact with
// the original (operators' and older tools' lines, "255" meaning ff). To make both agree, a key
// that canon would change (all decimal digits, e.g. "13") is written in OpenSSL's colon form
// ("00:13"), which canon reads back literally; a Perl agent reading our file gets the same key.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::agent {

// The map file's two header lines (cosmetic, as the original writes them).
inline constexpr std::string_view kTrustedMapHeader =
    "# ctrl-exec trusted dispatchers: <serial> <id>, one per line.\n"
    "# Managed by pairing - do not edit by hand.\n";

// canon() of a peer certificate's serial (lower-case hex as tls::Stream::peer_serial gives it).
std::string peer_key(std::string_view peer_serial_hex);

// The key under which a serial received on the wire is stored: lower-case hex with leading
// zeros dropped when it is plain hex, canon() of it otherwise (prefixes, colons). "" or "nan"
// when it is unusable.
std::string wire_serial_key(std::string_view wire_serial);

// How a key is written to the file so that canon() reads it back unchanged: as is when canon is
// the identity on it, else in colon form ("13" -> "00:13", "100" -> "01:00").
std::string map_line_serial(std::string_view key);

class TrustedMap {
public:
  // key -> dispatcher id, sorted by key.
  using Entries = std::map<std::string, std::string, std::less<>>;

  // The dispatcher id trusted under `key`, or nullptr.
  const std::string* find(std::string_view key) const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const Entries& entries() const { return entries_; }

  // Adds or re-points `key`. With `keep_owner`, a key held by another id is refused with
  // "serial already trusted for dispatcher '<other>'" (the /rotate-serial rule; pairing
  // re-points). Fails on an unusable key or an invalid id. Returns whether the map changed.
  Result<bool> add(const std::string& key, const std::string& id, bool keep_owner);
  // Removes `key` if `id` owns it: absent is a no-op (false); owned by another id fails with
  // "serial not owned by '<id>'".
  Result<bool> remove(const std::string& key, const std::string& id);

private:
  Entries entries_;
};

// Parses the file: everything from the first '#' is dropped, lines are trimmed and blank ones
// skipped; a line splits on its first whitespace run into serial and id; the serial goes through
// canon(); lines with an empty or "nan" serial or an invalid id (is_dispatcher_id) are skipped.
// Later lines win.
TrustedMap parse_trusted_map(std::string_view text);
// An absent file is an empty map; an unreadable one, or one that is not a regular file (a
// symbolic link is not followed), is an error.
Result<TrustedMap> load_trusted_map(const std::string& path);

// The header, then `<serial> <id>` lines sorted by key (serial as map_line_serial writes it).
std::string format_trusted_map(const TrustedMap& map);
// Atomic rewrite with mode 0644 (temp file in the same directory, rename). The directory must
// exist.
Status save_trusted_map(const std::string& path, const TrustedMap& map);

// Load, edit and save under an exclusive lock on `<path>.lock`, so that pairing and a running
// agent never lose each other's changes. `edit` returns whether it changed the map (nothing is
// written otherwise) or an error (nothing is written, the error is returned).
Status edit_trusted_map(const std::string& path,
                        const std::function<Result<bool>(TrustedMap&)>& edit);

// For request-pairing: trust `wire_serial` (the dispatcher's `dispatcher_serial`) as `id`,
// re-pointing it if it was trusted under another id and keeping every other entry.
Status add_trusted_dispatcher(const std::string& path, std::string_view wire_serial,
                              const std::string& id);

} // namespace cx::agent
