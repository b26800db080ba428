// Per-host results and the original's derived strings; see result.hpp.
#include "engine/result.hpp"

#include <cstdint>
#include <cstdio>

#include "base/strings.hpp"

namespace cx::engine {

std::string_view state_name(HostState s) {
  switch (s) {
  case HostState::ok: return "ok";
  case HostState::error: return "error";
  case HostState::timeout: return "timeout";
  case HostState::unreachable: return "unreachable";
  case HostState::busy: return "busy";
  case HostState::denied: return "denied";
  }
  return "error";
}

std::string format_rtt(uint64_t elapsed_us) {
  char buf[32];
  // %.0f rounds half to even, as Perl's sprintf does.
  std::snprintf(buf, sizeof buf, "%.0fms", static_cast<double>(elapsed_us) / 1000.0);
  return buf;
}

HostPort parse_host(std::string_view target, int default_port) {
  HostPort hp;
  hp.port = default_port > 0 ? default_port : 7443;
  size_t colon = target.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < target.size() && colon > 0) {
    std::string_view digits = target.substr(colon + 1);
    if (is_digits(digits)) {
      if (auto p = parse_uint(digits); p && *p <= 65535) {
        hp.host.assign(target.substr(0, colon));
        hp.port = static_cast<int>(*p);
        return hp;
      }
    }
  }
  hp.host.assign(target);
  return hp;
}

namespace {

bool has_any(const std::string& lower, std::initializer_list<std::string_view> needles) {
  for (auto n : needles)
    if (lower.find(n) != std::string::npos) return true;
  return false;
}

bool is_word(char c) {
  return is_word_char(c);
}

// `\b<word>\b` in an already lower-cased text.
bool has_word(const std::string& lower, std::string_view word) {
  size_t pos = 0;
  while ((pos = lower.find(word, pos)) != std::string::npos) {
    bool left = pos == 0 || !is_word(lower[pos - 1]);
    size_t end = pos + word.size();
    bool right = end >= lower.size() || !is_word(lower[end]);
    if (left && right) return true;
    pos += 1;
  }
  return false;
}

bool dns_failure(const std::string& l) {
  return has_any(l, {"bad hostname", "name or service not known", "nodename nor servname",
                     "temporary failure in name", "cannot resolve", "no address associated"});
}
bool refused(const std::string& l) {
  return l.find("connection refused") != std::string::npos;
}
bool no_route(const std::string& l) {
  return has_any(l, {"no route to host", "network is unreachable", "host is unreachable"});
}
bool timed_out(const std::string& l) {
  return l.find("timed out") != std::string::npos || has_word(l, "timeout");
}
bool tls_failure(const std::string& l) {
  return l.find("ssl connect") != std::string::npos || has_word(l, "ssl") || has_word(l, "tls") ||
         has_any(l, {"certificate", "handshake", "verify failed"});
}

} // namespace

std::string rewrite_transport_error(std::string_view error, std::string_view host, int port) {
  std::string l = to_lower(error);
  std::string h(host);
  if (dns_failure(l)) return "host '" + h + "' did not resolve - check the name or use an IP address";
  if (refused(l))
    return "host '" + h + "' did not respond on port " + std::to_string(port) +
           " - connection refused (agent not running, or wrong port?)";
  if (no_route(l)) return "host '" + h + "' is unreachable - no route to host or network down";
  if (timed_out(l)) return "host '" + h + "' did not respond - connection timed out";
  if (tls_failure(l)) return "TLS handshake with '" + h + "' failed - certificate or trust mismatch";
  return std::string(error);
}

bool is_timeout_error(std::string_view error) {
  std::string l = to_lower(error);
  return !dns_failure(l) && !refused(l) && !no_route(l) && timed_out(l);
}

bool is_unreachable_error(std::string_view error) {
  std::string l = to_lower(error);
  return dns_failure(l) || refused(l) || no_route(l);
}

void set_member(json::Document& doc, std::string_view key, std::string_view value) {
  auto& a = doc.GetAllocator();
  json::Value v(value.data(), static_cast<rapidjson::SizeType>(value.size()), a);
  set_member(doc, key, v);
}

void set_member(json::Document& doc, std::string_view key, int64_t value) {
  json::Value v(static_cast<int64_t>(value));
  set_member(doc, key, v);
}

void set_member(json::Document& doc, std::string_view key, const json::Value& value) {
  auto& a = doc.GetAllocator();
  json::Value copy(value, a);
  auto it = doc.FindMember(json::Value(rapidjson::StringRef(key.data(), key.size())));
  if (it != doc.MemberEnd()) {
    it->value = std::move(copy);
    return;
  }
  json::Value k(key.data(), static_cast<rapidjson::SizeType>(key.size()), a);
  doc.AddMember(k, copy, a);
}

void set_bool_member(json::Document& doc, std::string_view key, bool value) {
  json::Value v(value);
  set_member(doc, key, v);
}

void remove_member(json::Document& doc, std::string_view key) {
  doc.RemoveMember(json::Value(rapidjson::StringRef(key.data(), key.size())));
}

std::optional<std::string> string_member(const json::Value& obj, std::string_view key) {
  const json::Value* v = json::find(obj, key);
  if (!v || !v->IsString()) return std::nullopt;
  return std::string(v->GetString(), v->GetStringLength());
}

int64_t int_member(const json::Value& obj, std::string_view key, int64_t fallback) {
  const json::Value* v = json::find(obj, key);
  if (!v) return fallback;
  if (v->IsInt64()) return v->GetInt64();
  if (v->IsUint64()) return static_cast<int64_t>(v->GetUint64());
  if (v->IsDouble()) {
    // Clamped first: converting an out-of-range double is undefined (an agent may send 1e300).
    double d = v->GetDouble();
    if (!(d > -9.2e18)) return d != d ? fallback : INT64_MIN; // NaN cannot come from JSON
    if (d > 9.2e18) return INT64_MAX;
    return static_cast<int64_t>(d);
  }
  if (v->IsString()) {
    if (auto n = parse_int(trim(std::string_view(v->GetString(), v->GetStringLength()))))
      return *n;
  }
  return fallback;
}

bool truthy_member(const json::Value& obj, std::string_view key) {
  const json::Value* v = json::find(obj, key);
  return v && json::is_truthy(*v);
}

void canonicalize(HostResult& r, const std::optional<std::string>& reported) {
  set_member(r.doc, "host", r.name);
  if (reported && !reported->empty() && *reported != r.name)
    set_member(r.doc, "reported_hostname", *reported);
  else
    remove_member(r.doc, "reported_hostname");
  set_member(r.doc, "state", state_name(r.state));
}

} // namespace cx::engine
