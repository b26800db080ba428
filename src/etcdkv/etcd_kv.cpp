// The shared state store on etcd; see etcd_kv.hpp.
#include "etcdkv/etcd_kv.hpp"

#include <unistd.h>

#include <cstdlib>

#include "base/strings.hpp"
#include "base/time.hpp"
#include "event/loop.hpp"
#include "http/client.hpp"
#include "http/writer.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::etcdkv {

namespace {

// etcd's error answers carry the gRPC status code.
constexpr int64_t kGrpcNotFound = 5;
constexpr int64_t kGrpcUnavailable = 14;
// Marks, in the message, a member that could not serve during an election (for the operator;
// call() decides by CallInfo::electing).
constexpr std::string_view kElection = " (electing a leader)";

// The gateway writes 64-bit numbers as strings; absent means 0 (proto3 defaults are omitted).
int64_t i64(const json::Value& obj, std::string_view key) {
  const json::Value* v = json::find(obj, key);
  if (!v) return 0;
  if (v->IsInt64()) return v->GetInt64();
  if (v->IsString()) return std::strtoll(v->GetString(), nullptr, 10);
  return 0;
}

bool flag(const json::Value& obj, std::string_view key) {
  const json::Value* v = json::find(obj, key);
  return v && v->IsBool() && v->GetBool();
}

std::string b64(std::string_view s) {
  return base64_encode(s);
}

// The smallest key after every key that starts with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto c = static_cast<unsigned char>(prefix.back());
    if (c < 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0'); // every key
}

void compare_create_absent(json::Writer& w, const std::string& key) {
  w.begin_object()
      .member("key", b64(key))
      .member("target", "CREATE")
      .member("result", "EQUAL")
      .member("create_revision", "0")
      .end_object();
}

void compare_mod(json::Writer& w, const std::string& key, int64_t revision) {
  w.begin_object()
      .member("key", b64(key))
      .member("target", "MOD")
      .member("result", "EQUAL")
      .member("mod_revision", std::to_string(revision))
      .end_object();
}

void request_put(json::Writer& w, const std::string& key, std::string_view value, int64_t lease) {
  w.begin_object()
      .key("request_put")
      .begin_object()
      .member("key", b64(key))
      .member("value", b64(value));
  if (lease) w.member("lease", std::to_string(lease));
  w.end_object().end_object();
}

} // namespace

Result<Endpoint> parse_endpoint(std::string_view url) {
  Endpoint e;
  e.url = std::string(url);
  std::string_view rest = url;
  auto bad = [&](const std::string& why) {
    return error(ErrorKind::config, "etcd_endpoints: '" + std::string(url) + "' " + why);
  };
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    e.https = true;
  } else {
    return bad("is not http://host:port or https://host:port");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view port;
  if (rest.starts_with("[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed [");
    e.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.starts_with(":")) return bad("needs a port");
    port = rest.substr(1);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("needs a port");
    e.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  if (e.host.empty() || e.host.find_first_of("/ ") != std::string::npos) return bad("has no host");
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos)
    return bad("has no valid port");
  e.port = std::atoi(std::string(port).c_str());
  if (e.port < 1 || e.port > 65535) return bad("has no valid port");
  return e;
}

Result<std::shared_ptr<EtcdKv>> EtcdKv::open(const Options& o) {
  std::shared_ptr<EtcdKv> kv(new EtcdKv());
  bool any_https = false;
  for (const std::string& url : o.endpoints) {
    CX_ASSIGN_OR_RETURN(Endpoint e, parse_endpoint(url));
    any_https = any_https || e.https;
    kv->endpoints_.push_back(std::move(e));
  }
  if (kv->endpoints_.empty()) return error(ErrorKind::config, "etcd_endpoints: no endpoint");
  if (any_https) {
    if (o.ca.empty() || o.cert.empty() || o.key.empty())
      return error(ErrorKind::config,
                   "etcd_ca, etcd_cert and etcd_key: required for https etcd endpoints");
    CX_ASSIGN_OR_RETURN(auto creds, tls::Credentials::load(o.cert, o.key, o.ca));
    CX_ASSIGN_OR_RETURN(kv->tls_, tls::Config::client(creds, tls::PeerCheck::required));
  }
  kv->prefix_ = o.prefix;
  kv->dial_timeout_ms_ = o.dial_timeout_ms;
  kv->timeout_ms_ = o.timeout_ms;
  return kv;
}

std::string EtcdKv::describe() const {
  std::vector<std::string> urls;
  for (const auto& e : endpoints_)
    urls.push_back(e.url);
  return "etcd " + join(urls, ",");
}

Result<json::Document> EtcdKv::call(std::string_view path, const std::string& body,
                                    int64_t* etcd_code) {
  // While a cluster elects a leader (a member died) etcd answers "leader changed", "no leader"
  // or "request timed out" (gRPC Unavailable): that is asked again. The budget is two whole
  // passes' worth, because the pass that met the election may itself have spent a request
  // timeout waiting on a member that no longer answers.
  const uint64_t deadline = monotonic_ms() + 2 * (dial_timeout_ms_ + timeout_ms_);
  for (;;) {
    CallInfo info;
    auto r = call_once(path, body, info);
    if (r.ok() || !info.electing || monotonic_ms() >= deadline) {
      if (etcd_code) *etcd_code = info.etcd_code;
      return r;
    }
    ::usleep(200 * 1000);
  }
}

Result<json::Document> EtcdKv::call_once(std::string_view path, const std::string& body,
                                         CallInfo& info) {
  const size_t n = endpoints_.size();
  const size_t start = good_.load() % n;
  std::vector<std::string> failures;
  bool electing = false; // a member could not serve for an election
  std::string request = http::format_http10_request("POST", path, body);
  for (size_t i = 0; i < n; ++i) {
    size_t at = (start + i) % n;
    const Endpoint& ep = endpoints_[at];
    http::ClientResult result;
    {
      event::Loop loop;
      http::ClientOptions o;
      o.host = ep.host;
      o.port = ep.port;
      o.tls = ep.https ? tls_ : nullptr;
      o.connect_timeout_ms = dial_timeout_ms_;
      o.read_timeout_ms = timeout_ms_;
      o.total_timeout_ms = dial_timeout_ms_ + timeout_ms_;
      auto c = http::ClientCall::start(loop, std::move(o), request,
                                       [&](http::ClientResult r) { result = std::move(r); });
      loop.run();
    }
    const http::Response* resp = result.response();
    if (!resp) {
      failures.push_back(ep.url + ": " + result.status.message());
      continue;
    }
    auto doc = json::parse(resp->body);
    if (resp->status != 200) {
      std::string why = "HTTP " + std::to_string(resp->status);
      int64_t code = 0;
      if (doc.ok() && doc->IsObject()) {
        if (auto m = json::get_string(*doc, "message"); m.ok())
          why = *m;
        else if (auto e = json::get_string(*doc, "error"); e.ok())
          why = *e;
        code = i64(*doc, "code");
      }
      // gRPC Unavailable: this member cannot serve now (the cluster is electing a leader);
      // another may, or this one shortly.
      if (code == kGrpcUnavailable) {
        electing = true;
        failures.push_back(ep.url + ": " + why + std::string(kElection));
        continue;
      }
      good_ = at;
      info.etcd_code = code;
      return error(ErrorKind::http_status, "etcd " + ep.url + ": " + why + " (HTTP " +
                                               std::to_string(resp->status) + ", code " +
                                               std::to_string(code) + ")");
    }
    good_ = at; // where the next call starts: a member that served, not one electing
    if (!doc.ok() || !doc->IsObject())
      return error(ErrorKind::protocol, "etcd " + ep.url + ": an answer that is not a JSON object");
    return std::move(*doc);
  }
  info.electing = electing; // no member answered, and one of them for an election
  return error(ErrorKind::unreachable, "etcd unreachable: " + join(failures, "; "));
}

Result<std::optional<state::KvEntry>> EtcdKv::get(std::string_view key) {
  json::Writer w;
  w.begin_object().member("key", b64(full(key))).end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/kv/range", w.str()));
  const json::Value* kvs = json::find(doc, "kvs");
  if (!kvs || !kvs->IsArray() || kvs->Empty()) return std::optional<state::KvEntry>();
  const json::Value& kv = (*kvs)[0];
  state::KvEntry e;
  e.key = std::string(key);
  auto value = json::get_string(kv, "value");
  if (value.ok()) {
    auto raw = base64_decode(*value);
    if (!raw) return error(ErrorKind::protocol, "etcd: a value that is not base64");
    e.value = std::move(*raw);
  }
  e.revision = i64(kv, "mod_revision");
  return std::optional<state::KvEntry>(std::move(e));
}

Result<std::vector<state::KvEntry>> EtcdKv::list(std::string_view prefix) {
  std::vector<state::KvEntry> out;
  const std::string first = full(prefix);
  const std::string end = prefix_end(first);
  std::string from = first;
  for (;;) {
    json::Writer w;
    w.begin_object()
        .member("key", b64(from))
        .member("range_end", b64(end))
        .member("limit", "1000")
        .end_object();
    CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/kv/range", w.str()));
    const json::Value* kvs = json::find(doc, "kvs");
    std::string last;
    if (kvs && kvs->IsArray()) {
      for (const auto& kv : kvs->GetArray()) {
        auto k = json::get_string(kv, "key");
        auto v = json::get_string(kv, "value");
        auto key = k.ok() ? base64_decode(*k) : std::nullopt;
        auto value = v.ok() ? base64_decode(*v) : std::optional<std::string>("");
        if (!key || !value || key->compare(0, prefix_.size(), prefix_) != 0)
          return error(ErrorKind::protocol, "etcd: a key or value that is not base64");
        last = *key;
        out.push_back({key->substr(prefix_.size()), std::move(*value), i64(kv, "mod_revision")});
      }
    }
    if (!flag(doc, "more") || last.empty()) return out;
    from = last + std::string(1, '\0');
  }
}

Status EtcdKv::put(std::string_view key, std::string_view value, int64_t lease) {
  json::Writer w;
  w.begin_object().member("key", b64(full(key))).member("value", b64(value));
  if (lease) w.member("lease", std::to_string(lease));
  w.end_object();
  return call("/v3/kv/put", w.str()).status();
}

Result<bool> EtcdKv::create(std::string_view key, std::string_view value, int64_t lease) {
  return replace(key, 0, value, lease);
}

Result<bool> EtcdKv::replace(std::string_view key, int64_t revision, std::string_view value,
                             int64_t lease) {
  std::string k = full(key);
  json::Writer w;
  w.begin_object().key("compare").begin_array();
  if (revision == 0)
    compare_create_absent(w, k);
  else
    compare_mod(w, k, revision);
  w.end_array().key("success").begin_array();
  request_put(w, k, value, lease);
  w.end_array().end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/kv/txn", w.str()));
  return flag(doc, "succeeded");
}

Result<bool> EtcdKv::remove(std::string_view key) {
  json::Writer w;
  w.begin_object().member("key", b64(full(key))).end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/kv/deleterange", w.str()));
  return i64(doc, "deleted") > 0;
}

Result<bool> EtcdKv::move(std::string_view from, int64_t from_revision, std::string_view to,
                          std::string_view value) {
  std::string f = full(from), t = full(to);
  json::Writer w;
  w.begin_object().key("compare").begin_array();
  compare_mod(w, f, from_revision);
  compare_create_absent(w, t);
  w.end_array().key("success").begin_array();
  request_put(w, t, value, 0);
  w.begin_object()
      .key("request_delete_range")
      .begin_object()
      .member("key", b64(f))
      .end_object()
      .end_object();
  w.end_array().end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/kv/txn", w.str()));
  return flag(doc, "succeeded");
}

Result<int64_t> EtcdKv::grant_lease(int64_t ttl_s) {
  json::Writer w;
  w.begin_object().member("TTL", std::to_string(ttl_s)).end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/lease/grant", w.str()));
  int64_t id = i64(doc, "ID");
  if (id == 0) return error(ErrorKind::protocol, "etcd: a lease grant without an ID");
  return id;
}

Status EtcdKv::keep_alive(int64_t lease) {
  json::Writer w;
  w.begin_object().member("ID", std::to_string(lease)).end_object();
  CX_ASSIGN_OR_RETURN(json::Document doc, call("/v3/lease/keepalive", w.str()));
  const json::Value* result = json::find(doc, "result");
  if (!result || i64(*result, "TTL") <= 0)
    return error(ErrorKind::closed, "etcd: lease " + std::to_string(lease) + " has ended");
  return {};
}

Status EtcdKv::revoke_lease(int64_t lease) {
  json::Writer w;
  w.begin_object().member("ID", std::to_string(lease)).end_object();
  int64_t code = 0;
  Status st = call("/v3/lease/revoke", w.str(), &code).status();
  // A lease that has ended already has nothing left to revoke: etcd says NotFound (gRPC 5).
  if (!st.ok() && code == kGrpcNotFound) return {};
  return st;
}

} // namespace cx::etcdkv
