// Per-host results and the original's derived strings; see result.hpp.
#include "engine/result.hpp"

#include <cstdint>
#include <cstdio>
#include <iterator>

#include "base/strings.hpp"
#include "proto/agent_wire.hpp"
#include "proto/wire_schemas.hpp"

namespace cx::engine {

std::string_view state_name(HostState s) {
  static_assert(std::size(proto::kHostStates) == static_cast<size_t>(HostState::skipped) + 1);
  size_t i = static_cast<size_t>(s);
  return i < std::size(proto::kHostStates) ? proto::kHostStates[i] : "error";
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

const FailureRow kFailureTable[] = {
    {ErrorKind::none, HostState::ok, ""},
    {ErrorKind::other, HostState::error, "{error}"},
    {ErrorKind::dns, HostState::unreachable,
     "host '{host}' did not resolve - check the name or use an IP address"},
    {ErrorKind::refused, HostState::unreachable,
     "host '{host}' did not respond on port {port} - connection refused (agent not running, or "
     "wrong port?)"},
    {ErrorKind::unreachable, HostState::unreachable,
     "host '{host}' is unreachable - no route to host or network down"},
    {ErrorKind::timeout, HostState::timeout,
     "host '{host}' did not respond - connection timed out"},
    // The run endpoint words its own ("read timeout after <T>s", §5.4); the others use this.
    {ErrorKind::read_timeout, HostState::timeout,
     "host '{host}' did not respond - connection timed out"},
    {ErrorKind::closed, HostState::error, "{error}"},
    {ErrorKind::tls, HostState::error,
     "TLS handshake with '{host}' failed - certificate or trust mismatch"},
    // Ours: the original read any failed handshake as a trust problem; an agent that hangs up
    // mid-handshake is over its connection cap or refusing our address (docs/COMPATIBILITY.md).
    {ErrorKind::tls_closed, HostState::error,
     "TLS handshake with '{host}' failed - the agent closed the connection during the handshake "
     "(overloaded, or not accepting this address?)"},
    {ErrorKind::io, HostState::error, "{error}"},
    {ErrorKind::protocol, HostState::error, "{error}"},
    // The status line ("500 Internal Server Error"), as the original passes it through.
    {ErrorKind::http_status, HostState::error, "{error}"},
    {ErrorKind::denied, HostState::denied, "{error}"},
    {ErrorKind::config, HostState::error, "{error}"},
};
const size_t kFailureTableSize = std::size(kFailureTable);

namespace {
const FailureRow& failure_row(ErrorKind kind) {
  const FailureRow& row = kFailureTable[static_cast<size_t>(kind)];
  CX_CHECK(row.kind == kind); // the table is in the enum's order
  return row;
}
} // namespace

HostState failure_state(ErrorKind kind) {
  return failure_row(kind).state;
}

std::string failure_text(const Status& failure, std::string_view host, int port) {
  std::string_view text = failure_row(failure.kind()).text;
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find('{', pos);
    if (open == std::string_view::npos) break;
    size_t close = text.find('}', open);
    CX_CHECK(close != std::string_view::npos);
    std::string_view name = text.substr(open + 1, close - open - 1);
    out.append(text.substr(pos, open - pos));
    if (name == "host") {
      out.append(host);
    } else if (name == "port") {
      out.append(std::to_string(port));
    } else {
      CX_CHECK(name == "error");
      out.append(failure.message());
    }
    pos = close + 1;
  }
  out.append(text.substr(pos));
  return out;
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
  return proto::loose_integer(*v).value_or(fallback);
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
