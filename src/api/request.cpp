// Request reading and error bodies; see request.hpp.
#include "api/request.hpp"

#include <algorithm>

#include "base/strings.hpp"
#include "state/idempotency.hpp"
#include "json/writer.hpp"

namespace cx::api {

std::string error_body(std::string_view error, std::string_view detail) {
  json::Writer w;
  w.begin_object().member("ok", false).member("error", error);
  if (!detail.empty()) w.member("detail", detail);
  w.end_object();
  return w.str();
}

std::string denial_body(std::string_view reason, int code, bool generic) {
  json::Writer w;
  w.begin_object().member("ok", false);
  if (generic)
    w.member("error", "forbidden");
  else
    w.member("error", reason).member("code", code);
  w.end_object();
  return w.str();
}

std::string overload_body() {
  return error_body("service unavailable", "too many concurrent requests");
}

std::string no_route_body(std::string_view method, std::string_view path) {
  return error_body("not found", "no route for " + std::string(method) + " " + std::string(path));
}

std::pair<int, std::string> framing_error(const http::RequestParser& parser) {
  const http::RequestLimits limits;
  switch (parser.error()) {
  case http::ParseError::too_many_headers:
    return {431,
            error_body("request header fields too large",
                       "more than " + std::to_string(limits.max_header_lines) + " header lines")};
  case http::ParseError::headers_too_large:
    return {431, error_body("request header fields too large",
                            "header section exceeds " + std::to_string(limits.max_header_bytes) +
                                " bytes")};
  case http::ParseError::body_too_large:
    return {413, error_body("payload too large",
                            "body exceeds " + std::to_string(limits.max_body) + " bytes")};
  default:
    return {400, error_body("bad request", parser.error_message())};
  }
}

std::string gate_token(std::string_view body) {
  if (body.empty() || body.front() != '{') return "";
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject()) return "";
  const json::Value* t = json::find(*doc, "token");
  if (!t) return "";
  return json::scalar_string(*t).value_or("");
}

std::string bearer_token(const http::Request& req) {
  const std::string* h = req.header("authorization");
  if (!h) return "";
  std::string_view v = trim(*h);
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size() || to_lower(v.substr(0, kScheme.size())) != kScheme) return "";
  std::string_view rest = v.substr(kScheme.size());
  if (rest.front() != ' ' && rest.front() != '\t') return "";
  auto words = split_ws(rest);
  return words.empty() ? std::string() : words.front();
}

Result<std::optional<std::string>> read_idempotency_key(const http::Request& req) {
  const std::string* h = req.header("idempotency-key");
  if (!h) return std::optional<std::string>();
  if (!state::is_idempotency_key(*h))
    return error("Idempotency-Key must be 1 to " + std::to_string(state::kMaxIdempotencyKey) +
                 " printable ASCII characters");
  return std::optional<std::string>(*h);
}

namespace {

// Elements of a JSON array that must all be strings (numbers are read as Perl would).
Result<std::vector<std::string>> string_elements(const json::Value& arr, const char* what) {
  std::vector<std::string> out;
  out.reserve(arr.Size());
  for (const auto& e : arr.GetArray()) {
    auto s = json::scalar_string(e);
    if (!s) return error(std::string(what) + " must be an array of strings");
    out.push_back(std::move(*s));
  }
  return out;
}

// `hosts`: a non-empty array of at most kMaxHosts strings, as the original; with a tag
// selector it may be absent or empty, and with batches longer.
Result<std::vector<std::string>> required_hosts(const json::Value& body, const Targeting& t) {
  const json::Value* h = json::find(body, "hosts");
  if (t.tags && (!h || h->IsNull() || (h->IsArray() && h->Empty())))
    return std::vector<std::string>{};
  if (!h || !h->IsArray() || h->Empty())
    return error(t.tags ? "hosts must be an array" : "hosts must be a non-empty array");
  if (h->Size() > kMaxHosts && !t.rollout.batched())
    return error("too many hosts (max " + std::to_string(kMaxHosts) + ")");
  return string_elements(*h, "hosts");
}

// A member that is an integer or a string, as text for the rollout parsers; nullopt when
// absent or null.
Result<std::optional<std::string>> count_text(const json::Value& body, std::string_view key) {
  const json::Value* v = json::find(body, key);
  if (!v || v->IsNull()) return std::optional<std::string>();
  if (v->IsString())
    return std::optional<std::string>(std::string(v->GetString(), v->GetStringLength()));
  if (v->IsUint64()) return std::optional<std::string>(std::to_string(v->GetUint64()));
  if (v->IsNumber() && key == "batch_wait") {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", v->GetDouble());
    return std::optional<std::string>(std::string(buf));
  }
  return error(std::string(key) + " must be " +
               (key == "batch_wait" ? "a number of seconds" : "an integer or a percentage string"));
}

Result<Targeting> read_targeting(const json::Value& body) {
  Targeting t;
  if (const json::Value* tags = json::find(body, "tags"); tags && !tags->IsNull()) {
    if (!tags->IsObject() || tags->ObjectEmpty())
      return error("tags must be an object of strings, e.g. {\"role\":\"web\"}");
    state::TagFilter filter;
    for (const auto& m : tags->GetObject()) {
      std::string key(m.name.GetString(), m.name.GetStringLength());
      if (key.empty() || !m.value.IsString())
        return error("tags must be an object of strings, e.g. {\"role\":\"web\"}");
      filter.emplace_back(std::move(key),
                          std::string(m.value.GetString(), m.value.GetStringLength()));
    }
    t.tags = std::move(filter);
  }
  CX_ASSIGN_OR_RETURN(auto batch, count_text(body, "batch"));
  if (batch) {
    auto b = engine::parse_batch_size(*batch);
    if (!b.ok()) return error("batch: " + b.message());
    t.rollout.batch = *b;
  }
  CX_ASSIGN_OR_RETURN(auto wait, count_text(body, "batch_wait"));
  if (wait) {
    auto w = engine::parse_batch_wait(*wait);
    if (!w.ok()) return error("batch_wait: " + w.message());
    t.rollout.wait_s = *w;
    if (!batch) return error("batch_wait needs batch");
  }
  CX_ASSIGN_OR_RETURN(auto failures, count_text(body, "max_failures"));
  if (failures) {
    auto f = engine::parse_failure_limit(*failures);
    if (!f.ok()) return error("max_failures: " + f.message());
    t.rollout.max_failures = *f;
  }
  CX_TRY(engine::check_rollout(t.rollout, "batch", "batch_wait", "max_failures"));
  return t;
}

} // namespace

Result<json::Document> parse_body_object(std::string_view body) {
  if (body.empty()) return error("request body required");
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject()) return error("invalid JSON body");
  return std::move(doc).value();
}

Result<PingInput> read_ping(const json::Value& body) {
  PingInput in;
  CX_ASSIGN_OR_RETURN(in.target, read_targeting(body));
  CX_ASSIGN_OR_RETURN(in.hosts, required_hosts(body, in.target));
  in.username = json::scalar_or_empty(body, "username");
  in.token = json::scalar_or_empty(body, "token");
  return in;
}

Result<RunInput> read_run(const json::Value& body) {
  RunInput in;
  CX_ASSIGN_OR_RETURN(in.target, read_targeting(body));
  CX_ASSIGN_OR_RETURN(in.hosts, required_hosts(body, in.target));
  const json::Value* s = json::find(body, "script");
  auto script = s ? json::scalar_string(*s) : std::nullopt;
  if (!script || !is_script_name(*script))
    return error("script name required (alphanumeric and hyphens only)");
  in.script = std::move(*script);
  if (const json::Value* a = json::find(body, "args"); a && !a->IsNull()) {
    if (!a->IsArray()) return error("args must be an array");
    CX_ASSIGN_OR_RETURN(in.args, string_elements(*a, "args"));
  }
  in.username = json::scalar_or_empty(body, "username");
  in.token = json::scalar_or_empty(body, "token");
  const json::Value* async = json::find(body, "async");
  in.async = async && json::is_truthy(*async);
  const json::Value* stream = json::find(body, "stream");
  in.stream = stream && json::is_truthy(*stream);
  if (in.stream && in.async)
    return error("stream shows a sync run's output as it comes; it cannot be used with async");
  return in;
}

bool accepts_event_stream(const http::Request& req) {
  const std::string* h = req.header("accept");
  if (!h) return false;
  for (std::string_view part : split(*h, ',')) {
    std::string_view type = trim(part.substr(0, part.find(';')));
    if (to_lower(type) == "text/event-stream") return true;
  }
  return false;
}

Result<DiscoveryInput> read_discovery(std::string_view body) {
  DiscoveryInput in;
  if (body.empty()) return in;
  auto doc = json::parse(body);
  if (!doc.ok() || !doc->IsObject()) return in;
  // Anything but a list means every agent, as the original reads it.
  if (const json::Value* h = json::find(*doc, "hosts"); h && h->IsArray()) {
    if (h->Size() > kMaxHosts)
      return error("too many hosts (max " + std::to_string(kMaxHosts) + ")");
    CX_ASSIGN_OR_RETURN(std::vector<std::string> all, string_elements(*h, "hosts"));
    // Each name once: the answer is an object keyed by name.
    for (auto& n : all)
      if (std::find(in.hosts.begin(), in.hosts.end(), n) == in.hosts.end())
        in.hosts.push_back(std::move(n));
  }
  in.username = json::scalar_or_empty(*doc, "username");
  in.token = json::scalar_or_empty(*doc, "token");
  return in;
}

} // namespace cx::api
