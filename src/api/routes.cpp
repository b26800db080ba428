// The route table and the router; see routes.hpp. The operation texts are our own description
// of each route (dispatcher-and-api §6.5), written as OpenAPI 3.1 operation objects.
#include "api/routes.hpp"

#include <array>

#include "api/handlers.hpp"

namespace cx::api {

namespace {

constexpr std::string_view kIndexOp = R"json({
 "operationId": "index",
 "summary": "Service index",
 "description": "Names the service, its version and the two OpenAPI documents, and lists the endpoints.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The index.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IndexResponse"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kHealthOp = R"json({
 "operationId": "health",
 "summary": "Liveness check",
 "description": "Answers 200 while the server runs. Like every route it passes the pre-route auth gate first: with no auth hook and api_auth_default other than allow, it is refused with 403.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The server is up.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthResponse"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kOpenapiOp = R"json({
 "operationId": "openapi",
 "summary": "This document",
 "description": "The OpenAPI document of the routes this server serves. It is built into the binary.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The OpenAPI document.",
          "content": {"application/json": {"schema": {"type": "object"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kLiveOp = R"json({
 "operationId": "openapiLive",
 "summary": "This document, with the fleet filled in",
 "description": "The static document, with the registered agent names as the enum of every hosts list, the scripts the agents offer as the enum of RunRequest.script, and an x-ctrl-exec-scripts extension grouping each script's argument schemas by schema_version with the hosts that have it. The agents are asked for their capabilities on every request (after the pre-route gate only); nothing is cached. info.version gets +<unix time>.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The live OpenAPI document.",
          "content": {"application/json": {"schema": {"type": "object"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kPingOp = R"json({
 "operationId": "ping",
 "summary": "Ping agents",
 "description": "Checks mutual-TLS reachability of registered agents, all at once. The auth hook is asked with action ping. Per-host failures are reported in the results, never as an HTTP error. The agents that answer are then asked for their capabilities, and their tags cached in the registry. The API does not renew agent certificates. Ours: tags selects agents by their cached tags (the hook then sees the resolved hosts and ENVEXEC_TAGS), and batch, batch_wait and max_failures ping them batch by batch, as for /run (the answer then has batches).",
 "tags": ["agents"],
 "requestBody": {"required": true,
  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PingRequest"}}}},
 "responses": {
  "200": {"description": "One result per host, in completion order.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PingResponse"}}}},
  "400": {"$ref": "#/components/responses/BadRequest"},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "404": {"$ref": "#/components/responses/NotFound"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kRunOp = R"json({
 "operationId": "run",
 "summary": "Run a script on agents",
 "description": "Runs an allowlisted script on every listed agent at once, with no shell. The auth hook is asked with action run. Each host+script pair is locked for the length of the dispatch; a pair already locked gives 409. The run's record is stored with status submitted before any agent is contacted, and replaced when the dispatch ends; if the API stops in between, the record becomes unknown when an API starts again (GET /status/{reqid}). Synchronous runs answer 200 with every result (even if every host failed); with async true the run is submitted and the answer is 202 with the submission results, to be collected with GET /status/{reqid}. Both kinds are stored for 24 hours. Ours: tags selects every registered agent whose cached tags match (beside or instead of hosts; no match is 404), and the auth hook sees the resolved hosts, with the selector in ENVEXEC_TAGS. With batch (N or \"N%\"), the selection runs batch by batch, batch_wait seconds apart; each batch is a run of its own (its reqid, auth hook call, locks and record), and once more hosts than max_failures have failed, no further batch starts: the rest are reported skipped and the answer has stopped. A selection of more than 500 hosts needs batch. The answer is then a RunRolloutResponse (200) or AsyncRolloutResponse (202). With an Idempotency-Key, a repeat of the request by the same submitter (the same username and token) within those 24 hours runs nothing: it gets the first request's answer again, byte for byte, or, when none was stored, a RunState (202 while the first is still being dispatched). The same key with a different request is 422. Ours: with stream true (sync only, no Idempotency-Key), once the locks are taken and the record is written the answer is 200 with application/x-ndjson, one JSON object per line: RunOutputEvent for each piece of output as an agent sends it, RunResultEvent as each host ends, RunBatchEvent as each batch ends, and last the usual answer (RunResponse or RunRolloutResponse); the connection then closes. With Accept: text/event-stream the same objects come as Server-Sent Events named output, result, batch and summary. Errors before that (400, 403, 404, 409) are answered as usual. The run store records the final result as for any run.",
 "tags": ["agents"],
 "parameters": [
  {"name": "Idempotency-Key", "in": "header", "required": false,
   "description": "1 to 128 printable ASCII characters chosen by the client, the same for every retry of one request",
   "schema": {"type": "string"}}],
 "requestBody": {"required": true,
  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}}},
 "responses": {
  "200": {"description": "Synchronous: one result per host, in completion order. A repeat whose first request has no stored answer: its RunState (unknown or complete).",
          "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/RunResponse"},
            {"$ref": "#/components/schemas/RunState"},
            {"$ref": "#/components/schemas/RunRolloutResponse"}]}},
                      "application/x-ndjson": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/RunOutputEvent"},
            {"$ref": "#/components/schemas/RunResultEvent"},
            {"$ref": "#/components/schemas/RunBatchEvent"},
            {"$ref": "#/components/schemas/RunResponse"},
            {"$ref": "#/components/schemas/RunRolloutResponse"}]}},
                      "text/event-stream": {"schema": {"type": "string",
            "description": "event: output|result|batch|summary, then data: the JSON object of the NDJSON form"}}}},
  "202": {"description": "Asynchronous: submitted. A repeat whose first request is still being dispatched: its RunState (submitted).",
          "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/AsyncSubmitResponse"},
            {"$ref": "#/components/schemas/RunState"},
            {"$ref": "#/components/schemas/AsyncRolloutResponse"}]}}}},
  "400": {"$ref": "#/components/responses/BadRequest"},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "404": {"$ref": "#/components/responses/NotFound"},
  "409": {"$ref": "#/components/responses/Conflict"},
  "422": {"$ref": "#/components/responses/KeyReused"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kDiscoveryGetOp = R"json({
 "operationId": "discoveryGet",
 "summary": "Capabilities of every agent",
 "description": "Asks every registered agent for its version, tags and scripts. The auth hook is asked with action ping. The tags are cached in the registry before the answer.",
 "tags": ["agents"],
 "responses": {
  "200": {"$ref": "#/components/responses/DiscoverySuccess"},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "404": {"$ref": "#/components/responses/NotFound"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kDiscoveryPostOp = R"json({
 "operationId": "discoveryPost",
 "summary": "Capabilities of some agents",
 "description": "As GET /discovery, for the listed hosts (every registered agent when hosts is missing or empty). A body that is not a JSON object counts as {}.",
 "tags": ["agents"],
 "requestBody": {"required": false,
  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DiscoveryRequest"}}}},
 "responses": {
  "200": {"$ref": "#/components/responses/DiscoverySuccess"},
  "400": {"$ref": "#/components/responses/BadRequest"},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "404": {"$ref": "#/components/responses/NotFound"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kStatusOp = R"json({
 "operationId": "status",
 "summary": "A stored run",
 "description": "The stored record of a run submitted through this API (or the CLI's --async). For an async run, the hosts still running are asked for their results first. The auth hook is asked with action status, the Authorization Bearer token and the submitter recorded with the run; a refusal gives the same 404 as an unknown reqid, so nothing is disclosed. Records are kept for 24 hours.",
 "tags": ["runs"],
 "parameters": [
  {"name": "Authorization", "in": "header", "required": false,
   "description": "Bearer <token>, passed to the auth hook",
   "schema": {"type": "string"}}],
 "responses": {
  "200": {"description": "The record.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StatusResponse"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "404": {"$ref": "#/components/responses/NotFound"},
  "500": {"$ref": "#/components/responses/ServerError"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

constexpr std::string_view kMetricsOp = R"json({
 "operationId": "metrics",
 "summary": "Prometheus metrics",
 "description": "Ours: the server's metrics in the Prometheus text exposition format 0.0.4: requests by route and status, per-host results by operation and state, agent round-trip times, TLS handshakes full and resumed, fan-outs in flight, registry size, run-store records and the build. It passes the pre-route auth gate like every route, unless api_metrics_open is yes and the API is bound to a loopback address.",
 "tags": ["meta"],
 "responses": {
  "200": {"description": "The metrics.",
          "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}}},
  "403": {"$ref": "#/components/responses/Forbidden"},
  "503": {"$ref": "#/components/responses/ServiceUnavailable"}}})json";

bool is_lower_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// GET / lists these in this order, as the original does; GET / itself comes last, unlisted.
constexpr std::array kRoutes{
    Route{"GET", "/health", handle_health, true, nullptr, "", kHealthOp},
    Route{"POST", "/ping", handle_ping, true, nullptr, "", kPingOp},
    Route{"POST", "/run", handle_run, true, nullptr, "", kRunOp},
    Route{"GET", "/discovery", handle_discovery, true, nullptr, "", kDiscoveryGetOp},
    Route{"POST", "/discovery", handle_discovery, true, nullptr, "", kDiscoveryPostOp},
    Route{"GET", "/status/{reqid}", handle_status, true, is_lower_hex, "^[a-f0-9]+$", kStatusOp},
    Route{"GET", "/openapi.json", handle_openapi, true, nullptr, "", kOpenapiOp},
    Route{"GET", "/openapi-live.json", handle_openapi_live, true, nullptr, "", kLiveOp},
    Route{"GET", "/metrics", handle_metrics, true, nullptr, "", kMetricsOp},
    Route{"GET", "/", handle_index, false, nullptr, "", kIndexOp},
};

// Matches `path` against a documented pattern with at most one `{param}` segment.
bool match_path(const Route& r, std::string_view path, std::string& param) {
  size_t open = r.path.find('{');
  if (open == std::string_view::npos) return path == r.path;
  size_t close = r.path.find('}', open);
  std::string_view prefix = r.path.substr(0, open);
  std::string_view suffix = r.path.substr(close + 1);
  if (path.size() < prefix.size() + suffix.size()) return false;
  if (path.substr(0, prefix.size()) != prefix) return false;
  if (path.substr(path.size() - suffix.size()) != suffix) return false;
  std::string_view value = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (!r.param_ok || !r.param_ok(value)) return false;
  param.assign(value);
  return true;
}

} // namespace

std::span<const Route> routes() {
  return kRoutes;
}

std::optional<RouteMatch> match_route(std::string_view method, std::string_view path) {
  std::string param;
  for (const auto& r : kRoutes) {
    if (r.method != method) continue;
    param.clear();
    if (match_path(r, path, param)) return RouteMatch{&r, std::move(param)};
  }
  return std::nullopt;
}

} // namespace cx::api
