// Invariants for the state files that someone with write access to a state directory could
// plant and that privileged code reads: the agent's trusted-dispatcher map and revocation list,
// and the dispatcher's registry records and registry index, pairing queue files, run-store
// records, rotation state and TLS session cache. Shared by the libFuzzer targets and by the corpus
// replay in the unit tests.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/revoked.hpp"
#include "agent/trusted_map.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "pki/serial.hpp"
#include "state/pairing_queue.hpp"
#include "state/registry.hpp"
#include "state/registry_index.hpp"
#include "state/rotation.hpp"
#include "state/run_store.hpp"
#include "state/session_cache.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::fuzz {

namespace state_detail {

// Fixed, so that every run of an input is the same.
inline constexpr int64_t kNow = 1800000000;
inline constexpr const char* kRecordName = "fuzz-host";
inline constexpr const char* kQueueId = "0123abcd";
inline constexpr const char* kRunReqid = "fuzz-req";
inline constexpr const char* kDispatcherId = "fuzz-dispatcher";
// Work per input stays bounded however many lines or hosts it holds.
inline constexpr size_t kMaxItems = 16;

inline bool is_lower_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

inline bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  });
}

// A line of a serial list as both files read it: the comment dropped, trimmed.
inline std::string_view list_line(std::string_view raw) {
  if (size_t hash = raw.find('#'); hash != std::string_view::npos) raw = raw.substr(0, hash);
  return trim(raw);
}

inline std::string describe(const agent::TrustedMap& m) {
  std::string out;
  for (const auto& [key, id] : m.entries())
    out += key + "=" + id + ";";
  return out;
}

// --- Agent state -----------------------------------------------------------------------------

// Whatever the map reads is a usable key and id, is written so that it reads back the same, and
// a serial received on the wire is found again under its key after a write and a read (§4.2.1).
inline std::string check_trusted_map(std::string_view text) {
  agent::TrustedMap map = agent::parse_trusted_map(text);
  for (const auto& [key, id] : map.entries()) {
    if (!is_lower_hex(key)) return "map: key is not lower-case hex: " + key;
    if (!is_dispatcher_id(id)) return "map: invalid dispatcher id kept: " + id;
    if (pki::canon_serial(agent::map_line_serial(key)) != key)
      return "map: the written serial of " + key + " reads back as another key";
  }
  std::string written = agent::format_trusted_map(map);
  agent::TrustedMap back = agent::parse_trusted_map(written);
  if (describe(back) != describe(map))
    return "map: round trip changed " + describe(map) + " into " + describe(back);
  if (agent::format_trusted_map(back) != written) return "map: format is not stable";

  agent::TrustedMap wire;
  size_t lines = 0;
  for (const std::string& raw : split(text, '\n')) {
    if (++lines > kMaxItems) break;
    std::string_view line = trim(raw);
    std::string_view token =
        line.substr(0, std::min(line.size(), line.find_first_of(" \t\n\r\f\v")));
    std::string key = agent::wire_serial_key(token);
    if (key.empty()) continue;
    if (!is_lower_hex(key)) return "map: wire_serial_key gave an unusable key: " + key;
    auto added = wire.add(key, kDispatcherId, false);
    if (!added.ok()) return "map: a wire key was refused: " + added.message();
  }
  agent::TrustedMap wire_back = agent::parse_trusted_map(agent::format_trusted_map(wire));
  if (describe(wire_back) != describe(wire))
    return "map: wire serials " + describe(wire) + " read back as " + describe(wire_back);
  return "";
}

// Every line canon() can read is listed, and a serial reads the same in the revocation list as
// in the map (both are canon() of the line).
inline std::string check_revoked(std::string_view text) {
  agent::RevokedList list = agent::parse_revoked(text);
  size_t lines = 0, usable = 0;
  for (const std::string& raw : split(text, '\n')) {
    std::string_view line = list_line(raw);
    if (line.empty()) continue;
    std::string key = pki::canon_serial(line);
    if (key.empty() || key == "nan") continue;
    ++usable;
    if (!list.contains(key)) return "revoked: a readable line is not listed: " + key;
    if (++lines > kMaxItems || has_space(line) || !is_lower_hex(key)) continue;
    agent::TrustedMap one =
        agent::parse_trusted_map(std::string(line) + " " + std::string(kDispatcherId) + "\n");
    if (!one.find(key)) return "revoked: the map reads serial '" + std::string(line) + "' apart";
  }
  if (list.size() > usable) return "revoked: more keys than readable lines";
  return "";
}

// --- Dispatcher state ------------------------------------------------------------------------

// The time members the engine parses (rotation overlap, record expiry and serial times): what
// is accepted is a time that prints and reads back as itself (for years 0000-9999, which both
// forms can print).
inline std::string check_times(std::initializer_list<std::string_view> values) {
  constexpr int64_t kYear0 = -62167219200, kYear10000 = 253402300800;
  for (std::string_view v : values) {
    if (auto t = parse_iso8601_utc(v); t && *t >= kYear0 && *t < kYear10000)
      if (parse_iso8601_utc(iso8601_utc(*t)) != t)
        return "time: ISO-8601 '" + std::string(v) + "' does not read back";
    if (auto t = parse_openssl_time(v); t && *t >= kYear0 && *t < kYear10000)
      if (parse_openssl_time(openssl_time(*t)) != t)
        return "time: notAfter '" + std::string(v) + "' does not read back";
  }
  return "";
}

inline std::string check_agent_record(std::string_view text) {
  auto rec = state::parse_agent_record(text, kRecordName);
  if (!rec.ok()) {
    if (rec.message().rfind(std::string(kRecordName) + ".json: ", 0) != 0)
      return "record: error does not name the file: " + rec.message();
    return "";
  }
  if (rec->hostname.empty()) return "record: empty hostname";
  if (rec->lookup_by != "ip" && rec->lookup_by != "hostname") return "record: lookup_by kept";
  if (rec->port < 1 || rec->port > 65535) return "record: port out of range";
  if (rec->serial_status.empty()) return "record: empty serial_status";
  std::string broken =
      check_times({rec->paired, rec->expiry, rec->serial_broadcast, rec->serial_confirmed});
  if (!broken.empty()) return broken;
  // Read back under another name: the hostname must come from the text written.
  auto again = state::parse_agent_record(state::agent_record_json(*rec), "other-name");
  if (!again.ok()) return "record: our record does not read back: " + again.message();
  state::AgentRecord a = *again, b = *rec;
  a.extra.clear();
  b.extra.clear();
  if (a != b) return "record: round trip changed a known member";
  if (again->extra.size() != rec->extra.size()) return "record: unknown members lost";
  for (size_t i = 0; i < rec->extra.size(); ++i)
    if (again->extra[i].first != rec->extra[i].first) return "record: unknown members reordered";
  // Unknown members are kept as JSON text: a fixed point from the second write on.
  auto third = state::parse_agent_record(state::agent_record_json(*again), "other-name");
  if (!third.ok() || *third != *again) return "record: write/read is not stable";
  return "";
}

inline std::string check_pairing_request(std::string_view text) {
  auto req = state::parse_pairing_request(text, kQueueId);
  if (!req.ok()) {
    if (req.message().rfind(std::string(kQueueId) + ".json: ", 0) != 0)
      return "queue: error does not name the file: " + req.message();
    return "";
  }
  if (req->id.empty()) return "queue: empty id";
  if (req->lookup_by && *req->lookup_by != "ip" && *req->lookup_by != "hostname")
    return "queue: lookup_by kept: " + *req->lookup_by;
  if (req->port && (*req->port < 1 || *req->port > 65535)) return "queue: port out of range";
  if (req->reverse_confirmed != 0 && req->reverse_confirmed != 1)
    return "queue: reverse_confirmed is not 0 or 1";
  std::string once = state::pairing_request_json(*req);
  auto back = state::parse_pairing_request(once, "ffff");
  if (!back.ok()) return "queue: our request does not read back: " + back.message();
  if (state::pairing_request_json(*back) != once) return "queue: round trip changed the request";
  return "";
}

inline std::string check_rotation(std::string_view text) {
  auto s = state::parse_rotation(text);
  if (!s.ok()) {
    if (s.message().empty()) return "rotation: empty error";
    return "";
  }
  std::string broken =
      check_times({s->rotated_at, s->overlap_expires, s->previous_retired.value_or(std::string())});
  if (!broken.empty()) return broken;
  auto again = state::parse_rotation(state::rotation_json(*s));
  if (!again.ok()) return "rotation: our state does not read back: " + again.message();
  state::RotationState a = *again, b = *s;
  a.extra.clear();
  b.extra.clear();
  if (a != b) return "rotation: round trip changed a known member";
  if (again->extra.size() != s->extra.size()) return "rotation: unknown members lost";
  auto third = state::parse_rotation(state::rotation_json(*again));
  if (!third.ok() || *third != *again) return "rotation: write/read is not stable";
  return "";
}

inline std::optional<std::string> string_member(const json::Value& obj, const char* field) {
  const json::Value* v = json::find(obj, field);
  if (!v || !v->IsString()) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

// `pending` lists exactly the accepted or running hosts, sorted, and `complete` says it is empty.
inline std::string check_pending(const json::Value& record) {
  std::vector<std::string> hosts = state::pending_hosts(record);
  if (!std::is_sorted(hosts.begin(), hosts.end())) return "runs: pending hosts not sorted";
  const json::Value* pending = json::find(record, "pending");
  const json::Value* complete = json::find(record, "complete");
  if (!pending || !pending->IsArray() || pending->Size() != hosts.size())
    return "runs: pending does not list the pending hosts";
  for (rapidjson::SizeType i = 0; i < pending->Size(); ++i) {
    const json::Value& p = (*pending)[i];
    if (!p.IsString() || std::string_view(p.GetString(), p.GetStringLength()) != hosts[i])
      return "runs: pending does not list the pending hosts";
  }
  if (!complete || !complete->IsBool() || complete->GetBool() != hosts.empty())
    return "runs: complete disagrees with pending";
  return "";
}

// The names of an async record's hosts, at most kMaxItems.
inline std::vector<std::string> host_names(const json::Value& record) {
  std::vector<std::string> names;
  const json::Value* hosts = json::find(record, "hosts");
  if (!hosts || !hosts->IsObject()) return names;
  for (rapidjson::SizeType i = 0; i < hosts->MemberCount() && names.size() < kMaxItems; ++i) {
    const json::Value& name = hosts->MemberBegin()[i].name;
    names.emplace_back(name.GetString(), name.GetStringLength());
  }
  return names;
}

inline const json::Value* host_entry(const json::Value& record, std::string_view name) {
  const json::Value* hosts = json::find(record, "hosts");
  return hosts ? json::find(*hosts, name) : nullptr;
}

// One §3.3 transition of host `name` under `fetch`, checked against the rule.
inline std::string check_fetch(const json::Document& record, const std::string& name,
                               const json::Value& fetch) {
  json::Document after;
  after.CopyFrom(record, after.GetAllocator());
  const json::Value* before = host_entry(record, name);
  std::optional<std::string> old_status =
      before && before->IsObject() ? string_member(*before, "status") : std::nullopt;
  state::apply_fetch(after, name, fetch);
  const json::Value* entry = host_entry(after, name);
  if (!entry || !entry->IsObject()) return "runs: the fetched host entry is not an object";
  std::optional<std::string> status = string_member(*entry, "status");
  std::string fetched = string_member(fetch, "status").value_or("");
  if (fetched == "done") {
    if (status != "done") return "runs: done did not make the entry done";
    for (rapidjson::SizeType i = 0; i < entry->MemberCount(); ++i) {
      std::string_view k(entry->MemberBegin()[i].name.GetString(),
                         entry->MemberBegin()[i].name.GetStringLength());
      if (k != "status" && k != "exit" && k != "stdout" && k != "stderr" && k != "truncated" &&
          k != "timed_out")
        return "runs: a done entry kept member " + std::string(k);
    }
    const json::Value* exit = json::find(*entry, "exit");
    if (!exit) return "runs: a done entry without exit";
  } else if (fetched == "running" || fetched == "unknown") {
    if (status != (fetched == "running" ? "running" : "expired"))
      return "runs: running/unknown gave status " + status.value_or("-");
    if (json::find(*entry, "fetch_error")) return "runs: fetch_error kept";
  } else {
    if (status != old_status) return "runs: a failed fetch changed the status";
    // The result's own error text, even "" (as the original's `//` keeps it), else the default.
    auto err = string_member(*entry, "fetch_error");
    if (!err) return "runs: a failed fetch without fetch_error";
    const json::Value* given = json::find(fetch, "error");
    auto given_text = given ? json::scalar_string(*given) : std::nullopt;
    if (*err != given_text.value_or("fetch failed")) return "runs: fetch_error is not the error";
  }
  if (status == "busy" || status == "error" || status == "expired") {
    if (!state::host_failed(*entry)) return "runs: " + *status + " is not a failure";
  } else if (status == "accepted" || status == "running") {
    if (state::host_failed(*entry)) return "runs: " + *status + " is a failure";
  } else {
    (void)state::host_failed(*entry);
  }
  state::recompute_pending(after);
  std::string broken = check_pending(after);
  if (!broken.empty()) return broken;
  auto reread = json::parse(json::to_string(after));
  if (!reread.ok()) return "runs: the updated record does not parse back";
  return "";
}

inline std::string check_run_record(const json::Document& doc) {
  (void)state::is_sync_record(doc);
  json::Document record;
  record.CopyFrom(doc, record.GetAllocator());
  state::recompute_pending(record);
  std::string broken = check_pending(record);
  if (!broken.empty()) return broken;
  std::string once = json::to_string(record);
  state::recompute_pending(record);
  if (json::to_string(record) != once) return "runs: recompute_pending is not idempotent";

  // Fetch results: the fixed outcomes the engine produces, and the fuzzer's own (each host's
  // entry and the whole document, copied as the engine's result would be its own document).
  std::vector<json::Document> fetches;
  for (const char* f :
       {R"({"status":"done","exit":0,"stdout":"o","stderr":"","truncated":1})",
        R"({"status":"done","exit":"3"})", R"({"status":"running"})", R"({"status":"unknown"})",
        R"({"status":"error","error":"boom"})", R"({"error":7})", "null"})
    fetches.push_back(std::move(json::parse(f).value()));
  std::vector<std::string> names = host_names(record);
  for (const std::string& name : names) {
    if (const json::Value* e = host_entry(record, name)) {
      json::Document own;
      own.CopyFrom(*e, own.GetAllocator());
      fetches.push_back(std::move(own));
    }
  }
  json::Document whole;
  whole.CopyFrom(doc, whole.GetAllocator());
  fetches.push_back(std::move(whole));
  for (const std::string& name : names)
    for (const json::Document& f : fetches) {
      broken = check_fetch(record, name, f);
      if (!broken.empty()) return broken;
    }
  // A result for a host the record does not have changes nothing.
  json::Document untouched;
  untouched.CopyFrom(record, untouched.GetAllocator());
  state::apply_fetch(untouched, "\x01no such host", fetches.front());
  if (json::to_string(untouched) != once) return "runs: a result for an unknown host was kept";

  // The document as the submit results of a new async record, or as a sync record's results.
  const json::Value* results = json::find(doc, "results");
  const json::Value& submits = results ? *results : static_cast<const json::Value&>(doc);
  json::Document async =
      state::make_async_record(kRunReqid, "s", submits, kNow, cx::Submitter{"u", "127.0.0.1"});
  broken = check_pending(async);
  if (!broken.empty()) return "async: " + broken;
  for (const std::string& name : host_names(async)) {
    auto status = string_member(*host_entry(async, name), "status");
    if (status != "accepted" && status != "busy" && status != "error")
      return "async: a host with status " + status.value_or("-");
  }
  if (submits.IsArray()) {
    json::Document sync = state::make_sync_record(kRunReqid, "s", {"a"}, submits, kNow, {});
    if (!state::is_sync_record(sync)) return "sync: the record is not a sync record";
  }
  return "";
}

// --- Planted files ---------------------------------------------------------------------------

// A scratch state directory for this process: on tmpfs when there is one, so that the
// loaders' fsyncs cost nothing. Removed at exit.
class ScratchDir {
public:
  static const std::string& path() {
    static ScratchDir dir;
    return dir.path_;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }

private:
  ScratchDir() {
    std::string base = is_directory("/dev/shm") && ::access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/cx-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  std::string path_;
};

// Empties `dir` (creating it) and writes `text` as `dir/name`.
inline bool plant(const std::string& dir, const std::string& name, std::string_view text) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  return static_cast<bool>(out);
}

inline std::vector<std::string> dir_names(const std::string& dir) {
  auto names = list_dir(dir);
  return names.ok() ? *names : std::vector<std::string>();
}

// The names in a registry directory, less the index's: a cache list() writes beside the records.
inline std::vector<std::string> record_dir_names(const std::string& dir) {
  std::vector<std::string> names = dir_names(dir);
  std::erase(names, std::string(state::kRegistryIndexDir));
  return names;
}

// The agent's loaders read the file as the parsers read the text.
inline std::string check_planted_agent_files(const std::string& root, std::string_view text) {
  std::string dir = root + "/agent";
  if (!plant(dir, "dispatcher-serials", text)) return "";
  auto map = agent::load_trusted_map(dir + "/dispatcher-serials");
  if (!map.ok()) return "map: a planted file does not load: " + map.message();
  if (describe(*map) != describe(agent::parse_trusted_map(text)))
    return "map: the loader reads another map than the parser";
  if (!plant(dir, "revoked-serials", text)) return "";
  auto revoked = agent::load_revoked(dir + "/revoked-serials");
  if (!revoked.ok() || revoked->absent) return "revoked: a planted file does not load";
  if (revoked->list.size() != agent::parse_revoked(text).size())
    return "revoked: the loader reads another list than the parser";
  return "";
}

// A registry update of one agent writes that agent's file and nothing else, whatever the file
// held (its `hostname` member included).
inline std::string check_planted_record(const std::string& root, std::string_view text) {
  std::string dir = root + "/agents";
  std::string file = std::string(kRecordName) + ".json";
  if (!plant(dir, file, text)) return "";
  state::Registry reg(dir);
  auto parsed = state::parse_agent_record(text, kRecordName);
  auto got = reg.get(kRecordName);
  if (got.has_value() != parsed.ok()) return "registry: get disagrees with the parser";
  if (got && *got != *parsed) return "registry: get reads another record than the parser";
  auto all = reg.list();
  if (!all.ok() || all->size() != (parsed.ok() ? 1u : 0u)) return "registry: list miscounts";
  const std::vector<std::string> expect = {".registry.lock", file};

  auto updated = reg.update_expiry(kRecordName, "Jan  1 00:00:00 2030 GMT");
  if (!updated.ok()) return "registry: update_expiry failed: " + updated.message();
  if (*updated != parsed.ok()) return "registry: update_expiry of a record that does not parse";
  if (*updated) {
    if (record_dir_names(dir) != expect) return "registry: update_expiry wrote another file";
    auto after = reg.get(kRecordName);
    if (!after) return "registry: the updated record does not read back";
    // Compared after one write and read of its own: unknown members are a fixed point only
    // from there (a -0.0 in them is written "-0" once and reads back as 0).
    state::AgentRecord want = *parsed;
    want.expiry = "Jan  1 00:00:00 2030 GMT";
    auto want_read = state::parse_agent_record(state::agent_record_json(want), kRecordName);
    if (!want_read.ok() || *after != *want_read)
      return "registry: update_expiry changed more than the expiry";
  }
  state::SerialUpdate update;
  update.serial_status = "pending";
  Status st = reg.update_serial(kRecordName, update);
  if (!st.ok()) return "registry: update_serial failed: " + st.message();
  if (record_dir_names(dir) != expect) return "registry: update_serial wrote another file";
  auto after = reg.get(kRecordName);
  if (!after || after->serial_status != "pending") return "registry: update_serial lost";
  return "";
}

// A queued request is known by its file name, whatever id the file claims.
// A planted registry index never changes what list() returns (a fuzzer cannot guess the
// records' stamps), and whatever decodes is a record a file could hold, and encodes again to
// the same entries.
inline std::string check_planted_index(const std::string& root, std::string_view text) {
  std::string dir = root + "/agents";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (!plant(dir + "/" + std::string(state::kRegistryIndexDir),
             std::string(state::kRegistryIndexFile), text))
    return "";
  state::AgentRecord rec;
  rec.hostname = kRecordName;
  rec.ip = "10.0.0.1";
  rec.tags = {{"env", "prod"}};
  std::ofstream(dir + "/" + kRecordName + ".json") << state::agent_record_json(rec);
  std::ofstream(dir + "/other.json") << "{\"ip\":\"10.0.0.2\"}";
  auto all = state::Registry(dir).list();
  if (!all.ok() || all->size() != 2) return "index: list failed or miscounted";
  if ((*all)[0] != rec || (*all)[1].hostname != "other" || (*all)[1].ip != "10.0.0.2")
    return "index: a planted index changed what list() returns";
  auto index = state::decode_registry_index(text);
  if (!index) return "";
  auto again = state::decode_registry_index(state::encode_registry_index(*index));
  if (!again || *again != *index) return "index: decoded entries do not encode back";
  for (const auto& e : index->entries) {
    if (!e.record) continue;
    std::string_view name = state::RecordDir::record_name(e.file);
    auto read_back = state::parse_agent_record(state::agent_record_json(*e.record), name);
    if (!read_back.ok() || *read_back != *e.record)
      return "index: a decoded record is not one a record file could hold";
  }
  return "";
}

inline std::string check_planted_queue(const std::string& root, std::string_view text) {
  std::string dir = root + "/pairing";
  if (!plant(dir, std::string(kQueueId) + ".json", text)) return "";
  state::PairingQueue queue(dir);
  auto parsed = state::parse_pairing_request(text, kQueueId);
  auto got = queue.get(kQueueId);
  if (got.has_value() != parsed.ok()) return "queue: get disagrees with the parser";
  if (got && got->id != kQueueId) return "queue: a request is known by another id: " + got->id;
  // list() expires by mtime against the real clock; the file was just written.
  auto listed = queue.list(::time(nullptr));
  if (listed.size() != (parsed.ok() ? 1u : 0u)) return "queue: list miscounts";
  for (const auto& r : listed)
    if (r.id != kQueueId) return "queue: list names a request by another id: " + r.id;
  return "";
}

inline std::string check_planted_run_and_rotation(const std::string& root, std::string_view text) {
  std::string dir = root + "/runs";
  if (!plant(dir, std::string(kRunReqid) + ".json", text)) return "";
  state::RunStore store(dir);
  auto loaded = store.load(kRunReqid);
  auto doc = json::parse(text);
  if (loaded.has_value() != (doc.ok() && doc->IsObject()))
    return "runs: load disagrees with the parser";
  if (loaded) {
    std::string once = json::to_string(*loaded);
    Status st = store.save(kRunReqid, *loaded);
    if (!st.ok()) return "runs: save failed: " + st.message();
    auto again = store.load(kRunReqid);
    if (!again) return "runs: a saved record does not load";
    std::string twice = json::to_string(*again);
    auto third = json::parse(twice);
    if (!third.ok() || json::to_string(*third) != twice) return "runs: save/load is not stable";
  }
  std::string rot_dir = root + "/rotation";
  if (!plant(rot_dir, "rotation.json", text)) return "";
  auto loaded_rot = state::load_rotation(rot_dir + "/rotation.json");
  auto parsed_rot = state::parse_rotation(text);
  if (loaded_rot.ok() != parsed_rot.ok()) return "rotation: load disagrees with the parser";
  if (loaded_rot.ok() && (!*loaded_rot || **loaded_rot != *parsed_rot))
    return "rotation: load reads another state than the parser";
  return "";
}

// The cache loads what it can, and a save keeps every entry it loaded.
inline std::string check_planted_session_cache(const std::string& root, std::string_view text) {
  std::string dir = root + "/sessions";
  if (!plant(dir, "tls-sessions", text)) return "";
  std::string path = dir + "/tls-sessions";
  state::SessionCache cache(path);
  cache.load(kNow);
  std::vector<std::string> targets;
  auto doc = json::parse(text);
  if (doc.ok() && doc->IsObject())
    for (rapidjson::SizeType i = 0; i < doc->MemberCount() && targets.size() < kMaxItems; ++i) {
      const json::Value& name = doc->MemberBegin()[i].name;
      targets.emplace_back(name.GetString(), name.GetStringLength());
    }
  else if (cache.size() != 0)
    return "sessions: entries from a file that is not a JSON object";
  if (doc.ok() && doc->IsObject() && cache.size() > doc->MemberCount())
    return "sessions: more entries than members";
  std::vector<std::optional<std::string>> loaded;
  for (const std::string& t : targets) {
    loaded.push_back(cache.get(t));
    if (loaded.back() && loaded.back()->empty()) return "sessions: an empty session was loaded";
  }
  cache.put("fuzz:7443", "\x01session", kNow);
  Status st = cache.save(kNow);
  if (!st.ok()) return "sessions: save failed: " + st.message();
  state::SessionCache again(path);
  again.load(kNow);
  if (again.size() != cache.size()) return "sessions: save lost or added entries";
  if (again.get("fuzz:7443") != std::optional<std::string>("\x01session"))
    return "sessions: our entry was not saved";
  for (size_t i = 0; i < targets.size(); ++i)
    if (targets[i] != "fuzz:7443" && again.get(targets[i]) != loaded[i])
      return "sessions: an entry changed across save and load";
  return "";
}

} // namespace state_detail

// Returns "" when every invariant holds, else what broke. The text as the agent's map and
// revocation list.
inline std::string check_agent_state_text(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string broken = state_detail::check_trusted_map(text);
  if (!broken.empty()) return broken;
  return state_detail::check_revoked(text);
}

// The text as each of the dispatcher's JSON state files.
inline std::string check_dispatcher_state_text(const uint8_t* data, size_t size) {
  using namespace state_detail;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto check : {check_agent_record, check_pairing_request, check_rotation}) {
    std::string broken = check(text);
    if (!broken.empty()) return broken;
  }
  auto doc = json::parse(text);
  if (!doc.ok() || !doc->IsObject()) return "";
  return check_run_record(*doc);
}

// The bytes planted as each state file in a scratch directory and read by the real loaders.
inline std::string check_state_files(const uint8_t* data, size_t size) {
  using namespace state_detail;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string& root = ScratchDir::path();
  if (root.empty()) return "no scratch directory";
  for (auto check :
       {check_planted_agent_files, check_planted_record, check_planted_index, check_planted_queue,
        check_planted_run_and_rotation, check_planted_session_cache}) {
    std::string broken = check(root, text);
    if (!broken.empty()) return broken;
  }
  return "";
}

} // namespace cx::fuzz
