// What the API reads from a request and the exact error bodies it answers with
// (dispatcher-and-api §6.2-§6.5). Pure functions, so every rule is a unit-test row.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.hpp"
#include "engine/rollout.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
#include "state/registry.hpp"
#include "json/json.hpp"

namespace cx::api {

// The engine's host cap (dispatcher-and-api §5.3). The original's API child died without an
// answer beyond it; we answer 400 "too many hosts (max 500)" (docs/COMPATIBILITY.md).
inline constexpr size_t kMaxHosts = 500;

// {"ok":false,"error":<error>,"detail":<detail>}; detail is left out when empty.
std::string error_body(std::string_view error, std::string_view detail = {});
// The 403 body of a denial: {"ok":false,"error":<reason>,"code":<code>}, or with
// auth_deny_generic on, {"ok":false,"error":"forbidden"}.
std::string denial_body(std::string_view reason, int code, bool generic);
// 503 when more than api_max_children requests are in progress.
std::string overload_body();
// 404 for a method and path no route serves.
std::string no_route_body(std::string_view method, std::string_view path);

// The status and body for a request the HTTP parser refused (empty, 431, 413, malformed).
std::pair<int, std::string> framing_error(const http::RequestParser& parser);

// The token of the pre-route gate: the body's `token` when the body starts with '{' and decodes
// as a JSON object, else "". The Authorization header is not used there (§6.4).
std::string gate_token(std::string_view body);
// `Authorization: Bearer <token>` ("bearer" in any case): the first run of non-space characters
// after it; "" when absent or another scheme.
std::string bearer_token(const http::Request& req);

// The Idempotency-Key header of POST /run (ours; docs/COMPATIBILITY.md): nullopt when absent,
// an error (the `detail` of a 400) when it is not 1 to 128 printable ASCII characters. Of
// several such headers the last one counts, as for every header.
Result<std::optional<std::string>> read_idempotency_key(const http::Request& req);
// Whether the client's Accept header lists text/event-stream (a streamed /run is then sent as
// Server-Sent Events rather than NDJSON).
bool accepts_event_stream(const http::Request& req);

// Input validation. An error Result's message is the `detail` of a 400 "bad request".

// /ping and /run: "request body required" for an empty body, "invalid JSON body" for one that
// is not a JSON object.
Result<json::Document> parse_body_object(std::string_view body);

// What /run and /ping take beyond the original (ours; docs/COMPATIBILITY.md): `tags`, an
// object of strings, selects every registered agent whose cached tags match all its members
// (beside or instead of `hosts`); `batch` (N or "N%"), `batch_wait` (seconds) and
// `max_failures` (K or "K%") roll the selection out batch by batch (engine/rollout.hpp).
struct Targeting {
  std::optional<state::TagFilter> tags;
  engine::RolloutOptions rollout;
  bool plain() const { return !tags && !rollout.batched(); }
};

struct PingInput {
  std::vector<std::string> hosts; // may be empty with a tag selector
  std::string username, token;
  Targeting target;
};
Result<PingInput> read_ping(const json::Value& body);

struct RunInput {
  std::vector<std::string> hosts; // may be empty with a tag selector
  std::string script;
  std::vector<std::string> args;
  std::string username, token;
  bool async = false;
  // Ours: live output, answered as NDJSON (or Server-Sent Events) instead of one object.
  bool stream = false;
  Targeting target;
};
// Checked in the original's order: hosts, script, args (the fields of ours first).
Result<RunInput> read_run(const json::Value& body);

struct DiscoveryInput {
  std::vector<std::string> hosts; // empty: every registered agent
  std::string username, token;
};
// The body is optional and one that is not a JSON object counts as {}.
Result<DiscoveryInput> read_discovery(std::string_view body);

} // namespace cx::api
