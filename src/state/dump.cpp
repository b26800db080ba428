// The state document; see dump.hpp.
#include "state/dump.hpp"

#include "base/strings.hpp"
#include "state/pairing_queue.hpp"
#include "state/registry.hpp"
#include "state/rotation.hpp"
#include "state/run_store.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {

namespace {

constexpr std::string_view kFormatKey = "ctrl_exec_state";

// The members of object `key` of `doc` as (name, compact JSON) pairs; an absent member is
// empty, anything else but an object is an error.
Result<std::vector<std::pair<std::string, std::string>>> members(const json::Value& doc,
                                                                 std::string_view key) {
  std::vector<std::pair<std::string, std::string>> out;
  const json::Value* v = json::find(doc, key);
  if (!v || v->IsNull()) return out;
  if (!v->IsObject()) return error("state document: '" + std::string(key) + "' is not an object");
  for (const auto& m : v->GetObject()) {
    if (!m.value.IsObject())
      return error("state document: " + std::string(key) + "." + m.name.GetString() +
                   " is not an object");
    out.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()),
                     json::to_string(m.value));
  }
  return out;
}

void count(ImportTally& t, bool present, bool same) {
  if (!present)
    ++t.added;
  else if (!same)
    ++t.changed;
  else
    ++t.unchanged;
}

} // namespace

Result<std::string> export_state(const StatePaths& p) {
  json::Writer w;
  w.begin_object().member(kFormatKey, int64_t{1});

  CX_ASSIGN_OR_RETURN(auto agents, Registry(p.registry_dir).list());
  w.key("agents").begin_object();
  for (const AgentRecord& r : agents)
    w.key(r.hostname).raw(agent_record_json(r));
  w.end_object();

  w.key("pairing").begin_object();
  for (const PairingRequest& r : PairingQueue(p.pairing_dir).list(0))
    w.key(r.id).raw(pairing_request_json(r));
  w.end_object();

  RunStore runs(p.runs_dir);
  CX_ASSIGN_OR_RETURN(auto reqids, runs.list_reqids());
  w.key("runs").begin_object();
  for (const std::string& id : reqids)
    if (auto rec = runs.load(id)) w.key(id).raw(json::to_string(*rec));
  w.end_object();

  CX_ASSIGN_OR_RETURN(auto rotation, load_rotation(p.rotation_file));
  w.key("rotation");
  if (rotation)
    w.raw(rotation_json(*rotation));
  else
    w.null();
  w.end_object();
  return w.str();
}

Result<ImportReport> import_state(std::string_view document, const StatePaths& p, bool apply) {
  auto doc = json::parse(document);
  if (!doc.ok() || !doc->IsObject()) return error("not a state document: not a JSON object");
  const json::Value* format = json::find(*doc, kFormatKey);
  if (!format || !format->IsInt64() || format->GetInt64() != 1)
    return error("not a state document: no \"ctrl_exec_state\":1");
  // Everything is read and checked before anything is written.
  CX_ASSIGN_OR_RETURN(auto agents, members(*doc, "agents"));
  CX_ASSIGN_OR_RETURN(auto pairing, members(*doc, "pairing"));
  CX_ASSIGN_OR_RETURN(auto runs, members(*doc, "runs"));
  std::vector<AgentRecord> agent_records;
  for (const auto& [name, text] : agents) {
    if (!is_agent_name(name)) return error("state document: invalid agent name '" + name + "'");
    CX_ASSIGN_OR_RETURN(AgentRecord r, parse_agent_record(text, name));
    r.hostname = name;
    agent_records.push_back(std::move(r));
  }
  std::vector<PairingRequest> requests;
  for (const auto& [id, text] : pairing) {
    if (!is_queue_id(id)) return error("state document: invalid pairing id '" + id + "'");
    CX_ASSIGN_OR_RETURN(PairingRequest r, parse_pairing_request(text, id));
    r.id = id;
    requests.push_back(std::move(r));
  }
  for (const auto& [id, text] : runs)
    if (!is_run_reqid(id)) return error("state document: invalid reqid '" + id + "'");
  std::optional<RotationState> rotation;
  if (const json::Value* r = json::find(*doc, "rotation"); r && !r->IsNull()) {
    CX_ASSIGN_OR_RETURN(RotationState s, parse_rotation(json::to_string(*r)));
    rotation = std::move(s);
  }

  ImportReport rep;
  Registry registry(p.registry_dir);
  for (const AgentRecord& r : agent_records) {
    auto cur = registry.get(r.hostname);
    bool same = cur && agent_record_json(*cur) == agent_record_json(r);
    count(rep.agents, cur.has_value(), same);
    if (apply && !same) CX_TRY(registry.register_agent(r));
  }
  PairingQueue queue(p.pairing_dir);
  for (const PairingRequest& r : requests) {
    auto cur = queue.get(r.id);
    bool same = cur && pairing_request_json(*cur) == pairing_request_json(r);
    count(rep.pairing, cur.has_value(), same);
    if (apply && !same) CX_TRY(queue.add(r));
  }
  RunStore store(p.runs_dir);
  for (const auto& [id, text] : runs) {
    auto cur = store.load(id);
    bool same = cur && json::to_string(*cur) == text;
    count(rep.runs, cur.has_value(), same);
    if (!apply || same) continue;
    auto rec = json::parse(text);
    CX_TRY(store.save(id, *rec));
  }
  if (rotation) {
    CX_ASSIGN_OR_RETURN(auto cur, load_rotation(p.rotation_file));
    bool same = cur && *cur == *rotation;
    count(rep.rotation, cur.has_value(), same);
    if (apply && !same) CX_TRY(save_rotation(p.rotation_file, *rotation));
  }
  return rep;
}

} // namespace cx::state
