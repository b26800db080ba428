// The pairing queue; see pairing_queue.hpp.
#include "state/pairing_queue.hpp"

#include <unistd.h>

#include <algorithm>

#include "base/files.hpp"
#include "base/random.hpp"
#include "base/strings.hpp"
#include "state/kv.hpp"
#include "state/registry.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

constexpr std::string_view kJson = ".json";
constexpr std::string_view kApproved = ".approved";
constexpr std::string_view kDenied = ".denied";

std::optional<std::string> opt_str_member(const json::Value& o, const char* field) {
  const json::Value* v = json::find(o, field);
  if (!v || !v->IsString()) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

// The id of a queue file name with the given suffix, or "" if it is not one.
std::string_view id_of(std::string_view file, std::string_view suffix) {
  if (file.size() <= suffix.size() || !file.ends_with(suffix)) return {};
  std::string_view id = file.substr(0, file.size() - suffix.size());
  return is_queue_id(id) ? id : std::string_view{};
}

} // namespace

bool is_queue_id(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string pairing_request_json(const PairingRequest& r) {
  json::Writer w;
  w.begin_object()
      .member("id", r.id)
      .member("hostname", r.hostname)
      .member("ip", r.ip)
      .member("source_ip", r.source_ip)
      .member("csr", r.csr)
      .member("nonce", r.nonce)
      .member("lookup_by", r.lookup_by)
      .member("port", r.port)
      .member("received", r.received)
      .member("code", r.code)
      .member("reverse_dns", r.reverse_dns)
      .member("reverse_confirmed", r.reverse_confirmed)
      .end_object();
  return w.str();
}

Result<PairingRequest> parse_pairing_request(std::string_view text, std::string_view id) {
  auto doc = json::parse_object(text);
  if (!doc.ok()) return error(std::string(id) + ".json: " + doc.message());
  const json::Value& o = *doc;
  PairingRequest r;
  r.id = json::scalar_or_empty(o, "id");
  if (r.id.empty()) r.id = std::string(id);
  r.hostname = json::scalar_or_empty(o, "hostname");
  r.ip = json::scalar_or_empty(o, "ip");
  r.source_ip = json::scalar_or_empty(o, "source_ip");
  r.csr = json::scalar_or_empty(o, "csr");
  r.nonce = opt_str_member(o, "nonce");
  if (auto lb = opt_str_member(o, "lookup_by"); lb && (*lb == "ip" || *lb == "hostname"))
    r.lookup_by = *lb;
  if (const json::Value* p = json::find(o, "port"); p && p->IsInt64()) {
    int64_t v = p->GetInt64();
    if (v >= 1 && v <= 65535) r.port = static_cast<int>(v);
  }
  r.received = json::scalar_or_empty(o, "received");
  r.code = json::scalar_or_empty(o, "code");
  r.reverse_dns = json::scalar_or_empty(o, "reverse_dns");
  if (const json::Value* c = json::find(o, "reverse_confirmed"))
    r.reverse_confirmed = json::is_truthy(*c) ? 1 : 0;
  return r;
}

PairingQueue::PairingQueue(std::string dir) : dir_(std::move(dir)) {}

std::string PairingQueue::request_path(std::string_view id) const {
  return dir_ + "/" + std::string(id) + std::string(kJson);
}
std::string PairingQueue::approved_path(std::string_view id) const {
  return dir_ + "/" + std::string(id) + std::string(kApproved);
}
std::string PairingQueue::denied_path(std::string_view id) const {
  return dir_ + "/" + std::string(id) + std::string(kDenied);
}

// --- With the shared store (state/kv.hpp): the files' names as keys under pairing/, each
// bound to a lease of kPairingStaleSeconds, which does the stale expiry. ----------------------

namespace {

constexpr std::string_view kPairingKeys = "pairing/";

std::string pairing_key(std::string_view id, std::string_view suffix) {
  return std::string(kPairingKeys) + std::string(id) + std::string(suffix);
}

Status kv_put_expiring(KvStore& kv, const std::string& key, std::string_view value) {
  auto lease = kv.grant_lease(kPairingStaleSeconds);
  Status st = lease.ok() ? kv.put(key, value, *lease) : lease.status();
  if (st.ok()) return st;
  return error(st.kind(), "pairing queue in " + kv.describe() + ": " + st.message());
}

std::optional<std::string> kv_value(KvStore& kv, const std::string& key) {
  auto got = kv.get(key);
  if (!got.ok() || !*got) return std::nullopt;
  return (*got)->value;
}

// The ids of the requests (pairing/<id>.json) in the store.
std::vector<std::string> kv_request_ids(KvStore& kv) {
  std::vector<std::string> ids;
  auto all = kv.list(kPairingKeys);
  if (!all.ok()) return ids;
  for (const KvEntry& e : *all) {
    std::string_view rest = std::string_view(e.key).substr(kPairingKeys.size());
    if (rest.ends_with(kJson)) {
      std::string_view id = rest.substr(0, rest.size() - kJson.size());
      if (is_queue_id(id)) ids.emplace_back(id);
    }
  }
  return ids;
}

} // namespace

Status PairingQueue::ensure_dir() const {
  if (shared_kv()) return {};
  return make_state_dir(dir_);
}

size_t PairingQueue::expire_stale(int64_t now) const {
  if (shared_kv()) return 0; // the keys' leases end them
  auto names = list_dir(dir_);
  if (!names.ok()) return 0;
  size_t removed = 0;
  auto old = [&](const std::string& path) {
    auto m = file_mtime(path);
    return m && now - *m > kPairingStaleSeconds;
  };
  for (const std::string& f : *names) {
    if (auto id = id_of(f, kJson); !id.empty()) {
      bool answered = path_exists(approved_path(id)) || path_exists(denied_path(id));
      if (!answered && old(request_path(id)) && ::unlink(request_path(id).c_str()) == 0) ++removed;
      continue;
    }
    for (std::string_view suffix : {kApproved, kDenied}) {
      auto id = id_of(f, suffix);
      if (id.empty() || !old(dir_ + "/" + f)) continue;
      (void)remove_file(dir_ + "/" + f);
      if (::unlink(request_path(id).c_str()) == 0) ++removed;
    }
  }
  return removed;
}

size_t PairingQueue::pending_count() const {
  if (KvStore* kv = shared_kv()) return kv_request_ids(*kv).size();
  auto names = list_dir(dir_);
  if (!names.ok()) return 0;
  return static_cast<size_t>(std::count_if(names->begin(), names->end(), [](const std::string& f) {
    return f.size() > kJson.size() && std::string_view(f).ends_with(kJson);
  }));
}

std::string PairingQueue::new_id() const {
  for (;;) {
    std::string id = new_reqid();
    if (KvStore* kv = shared_kv()) {
      // 64 random bits: a clash is not worth a round trip per suffix.
      if (!kv_value(*kv, pairing_key(id, kJson))) return id;
      continue;
    }
    if (!path_exists(request_path(id)) && !path_exists(approved_path(id)) &&
        !path_exists(denied_path(id)))
      return id;
  }
}

Status PairingQueue::add(const PairingRequest& r) const {
  if (!is_queue_id(r.id)) return error("invalid pairing request id '" + r.id + "'");
  if (KvStore* kv = shared_kv())
    return kv_put_expiring(*kv, pairing_key(r.id, kJson), pairing_request_json(r) + "\n");
  CX_TRY(ensure_dir());
  WriteOptions opts;
  opts.mode = 0644;
  return write_file_atomic(request_path(r.id), pairing_request_json(r) + "\n", opts);
}

std::vector<PairingRequest> PairingQueue::list(int64_t now) const {
  expire_stale(now);
  std::vector<PairingRequest> out;
  if (KvStore* kv = shared_kv()) {
    for (const std::string& id : kv_request_ids(*kv))
      if (auto r = get(id)) out.push_back(std::move(*r));
  } else {
    auto names = list_dir(dir_);
    if (!names.ok()) return out;
    for (const std::string& f : *names) {
      auto id = id_of(f, kJson);
      if (id.empty()) continue;
      if (auto r = get(id)) out.push_back(std::move(*r));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const PairingRequest& a, const PairingRequest& b) {
    return a.received != b.received ? a.received < b.received : a.id < b.id;
  });
  return out;
}

std::optional<PairingRequest> PairingQueue::get(std::string_view id) const {
  if (!is_queue_id(id)) return std::nullopt;
  Result<std::string> text = error("absent");
  if (KvStore* kv = shared_kv()) {
    if (auto v = kv_value(*kv, pairing_key(id, kJson))) text = std::move(*v);
  } else {
    // The directory is group-writable: a symbolic link planted as a request or an answer is
    // not followed (pairing mode runs as root).
    text = read_regular_file(request_path(id), 1u << 20);
  }
  if (!text.ok()) return std::nullopt;
  auto r = parse_pairing_request(*text, id);
  if (!r.ok()) return std::nullopt;
  // The file name is the request's id: a file claiming another id (planted in the queue
  // directory) would otherwise be listed, approved and answered as that other request.
  r->id = std::string(id);
  return std::move(r).value();
}

Status PairingQueue::write_approved(std::string_view id, std::string_view body) const {
  if (!is_queue_id(id)) return error("invalid pairing request id '" + std::string(id) + "'");
  if (KvStore* kv = shared_kv()) return kv_put_expiring(*kv, pairing_key(id, kApproved), body);
  WriteOptions opts;
  opts.mode = 0644;
  return write_file_atomic(approved_path(id), body, opts);
}

Status PairingQueue::write_denied(std::string_view id, std::string_view body) const {
  if (!is_queue_id(id)) return error("invalid pairing request id '" + std::string(id) + "'");
  if (KvStore* kv = shared_kv()) {
    CX_TRY(kv_put_expiring(*kv, pairing_key(id, kDenied), body));
    auto gone = kv->remove(pairing_key(id, kJson));
    return gone.ok() ? Status() : gone.status();
  }
  WriteOptions opts;
  opts.mode = 0644;
  CX_TRY(write_file_atomic(denied_path(id), body, opts));
  return remove_file(request_path(id));
}

PairingQueue::Poll PairingQueue::poll(std::string_view id) const {
  Poll p;
  if (!is_queue_id(id)) return p;
  if (KvStore* kv = shared_kv()) {
    if (auto body = kv_value(*kv, pairing_key(id, kApproved))) {
      p.answer = PairingAnswer::approved;
      p.body = std::move(*body);
    } else if (auto denied = kv_value(*kv, pairing_key(id, kDenied))) {
      p.answer = PairingAnswer::denied;
      p.body = std::move(*denied);
    }
    return p;
  }
  if (auto body = read_regular_file(approved_path(id), 1u << 20); body.ok()) {
    p.answer = PairingAnswer::approved;
    p.body = std::move(*body);
  } else if (auto denied = read_regular_file(denied_path(id), 1u << 20); denied.ok()) {
    p.answer = PairingAnswer::denied;
    p.body = std::move(*denied);
  }
  return p;
}

void PairingQueue::finish(std::string_view id, PairingAnswer delivered) const {
  if (!is_queue_id(id)) return;
  if (KvStore* kv = shared_kv()) {
    if (delivered == PairingAnswer::approved) (void)kv->remove(pairing_key(id, kApproved));
    if (delivered == PairingAnswer::denied) (void)kv->remove(pairing_key(id, kDenied));
    if (delivered != PairingAnswer::denied) (void)kv->remove(pairing_key(id, kJson));
    return;
  }
  switch (delivered) {
  case PairingAnswer::approved:
    (void)remove_file(approved_path(id));
    (void)remove_file(request_path(id));
    break;
  case PairingAnswer::denied:
    (void)remove_file(denied_path(id));
    break;
  case PairingAnswer::none:
    (void)remove_file(request_path(id));
    break;
  }
}

} // namespace cx::state
