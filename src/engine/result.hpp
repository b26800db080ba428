// Per-host results of a fan-out, as the original reports them (dispatcher-and-api §5): a JSON
// object per host (RunResult, AsyncSubmitResult, PingResult, HostCapabilities, result fetch,
// rotate), plus our explicit per-host `state`. Also the exact strings the original derives from
// a failed exchange: the table of failure kinds (the texts of §5.8) and the rtt text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "json/json.hpp"

namespace cx::engine {

// How one host's exchange ended, whatever the endpoint. Written as the result's "state" member
// (ours; docs/COMPATIBILITY.md), so automation need not parse error texts:
//   ok          the agent answered as asked (a script that exits non-zero is still "ok");
//   error       the agent answered with an error, or the exchange failed otherwise;
//   timeout     connecting or waiting for the answer timed out;
//   unreachable the name did not resolve, the connection was refused, or no route;
//   busy        the script is already running there (async 409);
//   denied      the agent refused us (403, or its auth hook said no);
//   skipped     never contacted: a batched rollout stopped before the host's batch.
// Named by the words of proto::kHostStates, in the same order.
enum class HostState { ok, error, timeout, unreachable, busy, denied, skipped };
std::string_view state_name(HostState s);

struct HostResult {
  std::string name;   // the registry name (the result's `host`)
  std::string target; // where it was sent: "addr" or "addr:port" (resolve_dispatch)
  HostState state = HostState::error;
  json::Document doc; // the result object; always an object
  uint64_t rtt_us = 0;
  bool streamed = false; // the agent sent its output live (AgentReply::streamed)

  HostResult() { doc.SetObject(); }
  HostResult(HostResult&&) noexcept = default;
  HostResult& operator=(HostResult&&) noexcept = default;
};

// rtt as the original prints it: sprintf('%.0fms', elapsed_ms).
std::string format_rtt(uint64_t elapsed_us);

// `parse_host`: splits "<host>:<digits>" on the last colon followed only by digits; otherwise
// the whole text is the host and `default_port` applies (7443 when it is 0).
struct HostPort {
  std::string host;
  int port = 7443;
};
HostPort parse_host(std::string_view target, int default_port = 0);

// How a failed exchange is shown and counted, by the kind of its failure: the per-host state,
// and the operator's text. The texts are those of the original's transport-error rewrite
// (§5.8), which sorted LWP's error texts into the same five classes (name, refused, route,
// timeout, TLS) that our kinds name where the error happens; every other failure shows its
// own message. In `text`, {host} is the connect host, {port} the connect port and {error} the
// failure's own message.
struct FailureRow {
  ErrorKind kind;
  HostState state;
  std::string_view text;
};
// One row per ErrorKind, in the enum's order.
extern const FailureRow kFailureTable[];
extern const size_t kFailureTableSize;

// The row's state for `kind` (ok for none).
HostState failure_state(ErrorKind kind);
// The row's text for `failure` ("" for success). `host` is the connect host (an IP under
// lookup_by=ip), `port` the connect port.
std::string failure_text(const Status& failure, std::string_view host, int port);

// Small DOM helpers for result objects.
void set_member(json::Document& doc, std::string_view key, std::string_view value);
void set_member(json::Document& doc, std::string_view key, int64_t value);
void set_member(json::Document& doc, std::string_view key, const json::Value& value);
void set_bool_member(json::Document& doc, std::string_view key, bool value);
void remove_member(json::Document& doc, std::string_view key);
// A string member, or nullopt when absent or not a string.
std::optional<std::string> string_member(const json::Value& obj, std::string_view key);
// An integer member as the original reads `exit` (`// -1`): absent or not a number gives
// `fallback`; doubles are truncated.
int64_t int_member(const json::Value& obj, std::string_view key, int64_t fallback);
// Perl truth of a member (absent is false).
bool truthy_member(const json::Value& obj, std::string_view key);

// The canonicalisation every result gets (§5.3): `host` := name; `reported_hostname` is kept
// only when the agent reported a non-empty `host` that differs from the name (the agent's
// `host` member is taken from `reported`, the value before `host` was overwritten); the
// `state` member is set from `state`.
void canonicalize(HostResult& r, const std::optional<std::string>& reported);

} // namespace cx::engine
