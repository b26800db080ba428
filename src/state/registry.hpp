// The agent registry (dispatcher-and-api §3.1): one `<name>.json` record per paired agent in
// the registry directory, read-modify-write under `.registry.lock`, and the single addressing
// path (resolve_dispatch) that run, ping, discovery and maintain use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.hpp"
#include "state/kv.hpp"
#include "state/record_dir.hpp"

namespace cx::state {

inline constexpr int kDefaultAgentPort = 7443;
// A record file larger than this is not read (get() and list() skip it as corrupt).
inline constexpr size_t kMaxRecordBytes = 1u << 20;

// The serial_status values the original writes; records may hold others, which are kept.
inline constexpr std::string_view kSerialCurrent = "current";
inline constexpr std::string_view kSerialPending = "pending";
inline constexpr std::string_view kSerialStale = "stale";
inline constexpr std::string_view kSerialUnknown = "unknown";

// "ip" stays "ip"; anything else (absent, "", "IP", junk) is "hostname".
std::string normalize_lookup_by(std::string_view v);
// 1..65535 stays; anything else is kDefaultAgentPort.
int normalize_port(int64_t v);

// One registry record, with the §3.1 defaults applied on read. Members of the file that this
// version does not know are kept in `extra` (serialised JSON values) and written back, so a
// newer or older peer sharing the registry loses nothing.
struct AgentRecord {
  std::string hostname;               // the registry name; the file name without .json
  std::string ip;                     // IPv4/IPv6 literal or ""
  std::string paired;                 // ISO-8601Z time of approval, "" if unknown
  std::string expiry;                 // agent cert notAfter (openssl form), "" or "unknown"
  std::string reqid;                  // the pairing request id
  std::string lookup_by = "hostname"; // "hostname" | "ip"
  int port = kDefaultAgentPort;       // 1..65535
  std::map<std::string, std::string> tags;
  std::string dispatcher_serial; // lowercase hex the agent trusts, "" if unknown
  std::string serial_status = "unknown";
  std::string serial_broadcast;                           // ISO-8601Z or ""
  std::string serial_confirmed;                           // ISO-8601Z or ""
  std::vector<std::pair<std::string, std::string>> extra; // unknown members, JSON text

  bool operator==(const AgentRecord&) const = default;
};

// Parses a record file's text. `name` (the file name without .json) fills `hostname` when the
// file has none. Wrong-typed known members get their defaults; a body that is not a JSON
// object is an error ("<name>.json: ...").
Result<AgentRecord> parse_agent_record(std::string_view text, std::string_view name);
// The record as the compact JSON object written to disk, known members in §3.1 order.
std::string agent_record_json(const AgentRecord& rec);

// A merge-only update of the serial fields: members left unset are not touched.
struct SerialUpdate {
  std::optional<std::string> dispatcher_serial;
  std::optional<std::string> serial_status;
  std::optional<std::string> serial_broadcast;
  std::optional<std::string> serial_confirmed;
};

// edit-agent's changes (§4.15); unset members are left alone. ip is taken as given.
struct AgentEdit {
  std::optional<std::string> rename;
  std::optional<std::string> ip;
  std::optional<int64_t> port;          // normalised
  std::optional<std::string> lookup_by; // normalised
  bool empty() const { return !rename && !ip && !port && !lookup_by; }
};

struct EditResult {
  AgentRecord record;       // as written
  std::string renamed_from; // "" unless renamed
};

// One resolved host of a batch: results are keyed by `name`, the connection goes to `target`
// ("addr" when the port is 7443, else "addr:port").
struct DispatchTarget {
  std::string name;
  std::string target;
  bool operator==(const DispatchTarget&) const = default;
};

struct DispatchResolution {
  bool ok = true; // false when any reference is unknown
  // Empty unless ok. A set in first-seen order: a reference that resolves to the same name
  // and target as an earlier one is dropped (docs/COMPATIBILITY.md).
  std::vector<DispatchTarget> hosts;
  std::vector<std::string> refs;    // the references behind `hosts`, as given, in its order
  std::vector<std::string> unknown; // the references as given, in input order
  // The shared store (state/kv.hpp) could not be read: why, naming it; ok is false and
  // `unknown` empty. Never set with the files.
  std::string error;
};

// A `--tags k=v[,k=v...]` filter, AND of exact matches.
using TagFilter = std::vector<std::pair<std::string, std::string>>;
// Errors (the CLI prefixes "Invalid --tags filter: "):
//   "invalid tag filter '<piece>' (expected key=value)"  a piece without '=' or with no key;
//   "empty tag filter (expected key=value[,key=value...])"  nothing but commas and spaces.
// Each piece splits on its first '='; keys and values are trimmed; an empty value is allowed.
Result<TagFilter> parse_tag_filter(std::string_view text);
bool tags_match(const std::map<std::string, std::string>& tags, const TagFilter& filter);

// Creates a shared dispatcher state directory (agents/, pairing/, ...) that does not exist
// yet: mode 2770 and group ctrl-exec when that group exists (the 0.12.0 changelog's intent,
// §1.3), parents 0755. An existing directory is left exactly as it is.
Status make_state_dir(const std::string& path);

struct IndexReport;
class RegistryScan;

// `dir` is the registry directory: DispatcherConfig::registry_dir, or paths::registry_dir().
class Registry : public RecordDir {
public:
  using RecordDir::RecordDir;

  std::string lock_path() const;

  // Writes (creates or replaces) the record named rec.hostname. Refuses an invalid name with
  // "invalid hostname '<n>' - refusing to use as a registry key".
  Status register_agent(const AgentRecord& rec);

  // The record, or nullopt when the name is invalid, absent or its file does not parse.
  std::optional<AgentRecord> get(std::string_view name) const;

  // Every record that parses, sorted by hostname; corrupt files are skipped. A missing
  // directory is an empty registry; an unreadable one fails (kind `denied`, "permission
  // denied", when that is the reason). Reads through the registry index (registry_index.hpp), which
  // it rewrites when a file changed and the directory is writable; `report`, when given, says what
  // it did.
  Result<std::vector<AgentRecord>> list(IndexReport* report = nullptr) const;
  // What list() is made from, without decoding every record: for callers that go through
  // 10,000 records once (registry_index.hpp). The same errors as list().
  Result<RegistryScan> scan(IndexReport* report = nullptr) const;
  // Registry names from the file names alone (no parsing), sorted.
  std::vector<std::string> list_hostnames() const;

  // Deletes the record and returns what it held; "No registry entry for '<n>'" otherwise.
  Result<AgentRecord> remove(std::string_view name);

  // edit-agent under the lock: "No registry entry for '<n>'", "invalid agent name '<n>' (use
  // letters, digits, '.', '-', '_')", "agent '<new>' already exists". A rename writes the new
  // file (hostname = new name) and then unlinks the old one.
  Result<EditResult> edit(std::string_view name, const AgentEdit& change);

  // Set the cert expiry / the cached tags of an existing record, keeping every other field.
  // false when there is no such agent (nothing is created).
  Result<bool> update_expiry(std::string_view name, std::string_view expiry);
  Result<bool> update_tags(std::string_view name, const std::map<std::string, std::string>& tags);
  // The same for many agents under one lock: each existing record whose tags differ gets the
  // new ones (absent or corrupt records are not created; invalid names are skipped). Returns
  // how many files were written. An empty list returns 0 without touching the directory.
  Result<size_t> bulk_update_tags(
      const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& updates);

  // Merge `update` into the record, creating a minimal one ({hostname} plus defaults) when the
  // file is absent or corrupt: rotation marks agents this way (§3.1).
  Status update_serial(std::string_view name, const SerialUpdate& update);
  // The same for many agents under one lock. Returns how many records were written; invalid
  // names are skipped. An empty list returns 0 without touching the directory.
  Result<size_t>
  bulk_update_serial(const std::vector<std::pair<std::string, SerialUpdate>>& updates);

  // §3.1 resolution for a batch of `name` / `name:<digits>` references. Names are never
  // resolved through DNS: any reference without a registry record makes the batch fail.
  DispatchResolution resolve_dispatch(const std::vector<std::string>& refs) const;
  // The same for one reference; an unknown one is returned unchanged.
  std::string resolve_target(std::string_view ref) const;
  // Every record whose tags match `filter` (tags_match), sorted by registry name, each with
  // the target resolve_dispatch gives its bare name; `refs` holds the names. Never ok=false:
  // empty `hosts` means no match (an unreadable directory matches nothing). Reads through the
  // index, as list() does.
  DispatchResolution resolve_tags(const TagFilter& filter) const;

private:
  Result<EditResult> edit_kv(KvStore& kv, std::string_view name, const AgentEdit& change);
  // Runs `fn` holding the registry lock (or unlocked if the lock file cannot be opened, as the
  // original does).
  template <typename F> auto locked(F&& fn) -> decltype(fn());
  // Writes `rec` as the file of registry key `name`. The key always comes from the caller,
  // never from a record's `hostname` member: a record file's content must not choose which file
  // an update rewrites.
  Status write_record(std::string_view name, const AgentRecord& rec) const;
};

} // namespace cx::state
