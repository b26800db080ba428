// The JSON messages of the agent's port 7443 (agent-and-wire §3.4, §3.7, §3.9): request and
// response bodies of /run, /ping, /capabilities, /result, /rotate-serial, /renew and
// /renew-complete, as structs with to_json() and from_json(). The agent (server) and the
// dispatcher engine (client) both use them, so the wire is defined once.
//
// Key order on the wire is unspecified (the original's Perl hashes are randomised); we write a
// fixed order and never depend on one when reading. `exit` is always a JSON integer.
//
// Reading follows these rules:
//  * the agent reads requests as the original does: loose scalars (a number where a string is
//    expected is read as Perl would stringify it, anything else as ""), flags by Perl truth;
//  * replies are read by from_json(v, Reading): absent (or null) fields take their defaults,
//    flags are read by Perl truth, and a field of the wrong type is an error naming the field
//    (Reading::strict) or counts as absent (Reading::lenient, how the dispatcher reads an
//    agent's answer: the original's Perl never rejected one for a type, and a Perl agent may
//    send `exit` as a string). Extra keys are not kept here: the dispatcher passes an agent's
//    answer through as the parsed json::Document, members and order intact, and reads it
//    through these structs only to decide and to log.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "json/json.hpp"

namespace cx::proto {

// How from_json treats a member of the wrong type (see above). Both fail for a non-object.
enum class Reading { strict, lenient };

// --- Words both sides use ------------------------------------------------------------------

// The `status` values of the replies.
inline constexpr std::string_view kStatusOk = "ok";             // ping, capabilities, rotate, renew
inline constexpr std::string_view kStatusError = "error";       // a failed rotate or renew
inline constexpr std::string_view kStatusAccepted = "accepted"; // an async run started
inline constexpr std::string_view kStatusBusy = "busy";         // an async run already running
inline constexpr std::string_view kStatusRunning = "running";   // an async record, not finished
inline constexpr std::string_view kStatusDone = "done";         // an async record, finished
inline constexpr std::string_view kStatusUnknown = "unknown";   // no such async record

// The agent's refusal by its auth hook: the `error` of a /run answer (HTTP 200, exit -1) is
// "not authorised: <reason>"; the /capabilities 403 body's is "not authorised".
inline constexpr std::string_view kNotAuthorised = "not authorised";
inline constexpr std::string_view kSerialMismatch = "serial mismatch"; // the map gate's 403
std::string not_authorised_error(std::string_view reason);             // "not authorised: <reason>"
// Whether a reply's `error` is that refusal (the dispatcher counts the host as denied).
bool is_not_authorised(std::string_view error);

// --- Bodies shared by several endpoints ---------------------------------------------------

// 4xx bodies: {"error":E} or, for the map gate, {"error":"serial mismatch","status":"forbidden"}.
struct ErrorReply {
  std::optional<std::string> error; // the dispatcher tells absent from "" (Perl's `//`)
  std::optional<std::string> status;

  std::string to_json() const;
  static Result<ErrorReply> from_json(const json::Value& v, Reading reading = Reading::strict);
};

// The fixed error bodies of the agent, exactly as the original sends them.
namespace body {
std::string not_found();         // 404 {"error":"not found"}
std::string empty_request();     // 400 {"error":"empty request"}
std::string too_many_headers();  // 431 {"error":"too many headers"}
std::string request_too_large(); // 413 {"error":"request too large"}
std::string bad_request();       // 400 {"error":"bad request"} (our parser's other refusals)
std::string revoked();           // 403 {"error":"certificate revoked"}
std::string serial_mismatch();   // 403 {"error":"serial mismatch","status":"forbidden"}
std::string forbidden();         // 403 {"error":"forbidden"} (/capabilities map gate)
std::string not_authorised();    // 403 {"error":"not authorised"} (/capabilities hook deny)
std::string not_authorised(std::string_view reason); // 403 {"error":"not authorised: R"}
} // namespace body

// --- POST /run ------------------------------------------------------------------------------

struct RunRequest {
  std::string script;
  std::vector<std::string> args;
  std::string reqid;
  std::string username;
  std::string token;
  bool async = false;
  // Ours (docs/COMPATIBILITY.md): live output. Our agent then answers a sync run with an
  // NDJSON stream (RunChunk lines, then the RunResult); the original's agent ignores the key.
  bool stream = false;

  // The dispatcher's body: {"script","args","reqid","username","token"} plus "async":true
  // only for an async submission and "stream":true only when live output is wanted.
  std::string to_json() const;
};

// Why a /run body could not be read. Each maps to its own reply (agent-and-wire §3.4.1).
enum class RunRequestError {
  none,
  invalid_json,     // not JSON, or JSON that is not an object: {"exit":-1,"error":"invalid JSON"}
  args_not_array,   // {"exit":-1,"error":"args must be an array","reqid":R}
  args_not_strings, // an element of args is an array or object (ours; same reply shape)
  args_with_nul,    // an element of args holds a NUL byte, which execve cannot pass (ours)
};

struct RunRequestParse {
  RunRequest request; // as much as was read (reqid is set for args errors)
  RunRequestError error = RunRequestError::none;
};

// The agent's reading of a /run body. Loose like the original: script, reqid, username and
// token are read as Perl scalars ("" when absent, null or not a scalar), `async` by Perl truth,
// and an args element that is a number or boolean is stringified as Perl would ("1"/"0" for
// booleans, "" for null).
RunRequestParse parse_run_request(std::string_view body);

// The error text for a RunRequestError ("" for none).
std::string_view run_request_error_text(RunRequestError e);

// The sync result of a run, and the HTTP-200 refusals that share its shape:
//   {"script":S,"exit":N,"stdout":"…","stderr":"…","reqid":R}
//   {"script":S,"exit":-1,"error":"script not permitted","reqid":R}
//   {"exit":-1,"error":"invalid JSON"}
// Fields that are absent are not written.
struct RunResult {
  std::optional<std::string> script;
  int64_t exit = -1;
  std::optional<std::string> out; // "stdout"
  std::optional<std::string> err; // "stderr"
  std::optional<std::string> reqid;
  std::optional<std::string> error;
  // Our additions (docs/COMPATIBILITY.md), written only when true: an output stream hit
  // script_output_limit; the script was killed by script_timeout.
  bool truncated = false;
  bool timed_out = false;
  // Agents never send it; the Perl dispatcher keeps it as reported_hostname when present.
  std::optional<std::string> host;

  std::string to_json() const;
  static Result<RunResult> from_json(const json::Value& v, Reading reading = Reading::strict);
};

// --- POST /run with "stream": true (ours) -------------------------------------------------

// The Content-Type of a streamed /run answer: one JSON object per line (LF-terminated), each
// piece of output as a RunChunk, then the RunResult as the last line; the body ends when the
// connection closes. A dispatcher tells it from the original's one JSON object by this type.
inline constexpr std::string_view kNdjsonType = "application/x-ndjson";
// A RunChunk's data is at most this many bytes (whole lines where lines exist).
inline constexpr size_t kMaxChunkBytes = 16384;

// One piece of a script's output as it was produced:
//   {"stream":"stdout"|"stderr","data":"...","ms":N}
// `ms` is the time since the script started, in milliseconds, on the agent's clock.
struct RunChunk {
  std::string stream; // "stdout" or "stderr"
  std::string data;
  int64_t ms = 0;

  bool is_stdout() const { return stream == "stdout"; }
  std::string to_json() const;
  // A line is a chunk when it is an object whose "stream" is "stdout" or "stderr" and whose
  // "data" is a string; anything else (the final result) is not.
  static std::optional<RunChunk> from_json(const json::Value& v);
};

// Async submission replies: 202 {"script":S,"status":"accepted","reqid":R} and 409
// {"script":S,"status":"busy","reqid":R,"error":"script already running"}.
struct AsyncReply {
  std::string script;
  std::string status; // "accepted" or "busy"
  std::string reqid;
  std::optional<std::string> error;

  std::string to_json() const;
  static Result<AsyncReply> from_json(const json::Value& v, Reading reading = Reading::strict);
};

// The async refusals that are HTTP 200 with exit -1 (RunResult shape).
inline constexpr std::string_view kAsyncExecutorRefusal =
    "async runs are not yet supported with the executor (privilege separation); run "
    "synchronously";
inline constexpr std::string_view kAsyncNeedsReqid = "async run requires a valid reqid";
inline constexpr std::string_view kAsyncStartFailed = "could not start async job";
inline constexpr std::string_view kAsyncBusy = "script already running";

// --- GET /result/<reqid> ----------------------------------------------------------------

// The stored async record, returned verbatim by /result:
//   running: {"reqid","status":"running","script","owner","started"}
//   done:    ... plus "finished","exit","stdout","stderr"
// and the 404 body {"status":"unknown","reqid":R} (status "unknown", nothing else).
struct ResultRecord {
  std::string reqid;
  std::string status; // "running", "done" or "unknown" (also read for a record without one)
  std::string script;
  std::string owner;
  std::string started; // ISO-8601 UTC
  std::optional<std::string> finished;
  std::optional<int64_t> exit;
  std::optional<std::string> out;
  std::optional<std::string> err;
  // Ours, with done: why there is no normal result (a timeout; "interrupted: ..." when the
  // job's supervisor ended without one). A dispatcher may also set it on a failed fetch.
  std::optional<std::string> error;
  bool truncated = false; // ours, as in RunResult
  bool timed_out = false;

  std::string to_json() const;
  static Result<ResultRecord> from_json(const json::Value& v, Reading reading = Reading::strict);
};

std::string result_unknown_json(std::string_view reqid);

// --- POST /ping ----------------------------------------------------------------------------

struct PingRequest {
  std::string reqid;
  std::string to_json() const;
  // Lenient as the agent is: invalid JSON or a missing reqid gives "".
  static PingRequest parse(std::string_view body);
};

// {"status":"ok","host":H,"version":V,"expiry":E,"staged":false,"reqid":R}
struct PingReply {
  std::string status = std::string(kStatusOk);
  std::string host;
  std::string version;
  std::string expiry; // OpenSSL notAfter text, or "unknown"
  bool staged = false;
  std::string reqid;

  std::string to_json() const;
  static Result<PingReply> from_json(const json::Value& v, Reading reading = Reading::strict);
};

// --- GET /capabilities -----------------------------------------------------------------------

struct ScriptInfo {
  std::string name;
  std::string path;
  bool executable = false;
  std::string profile = "default";
  std::optional<std::string> schema_json; // the sidecar object, compact JSON text
  std::optional<std::string> schema_version;
};

// {"status":"ok","host","version","tags":{…},"scripts":[…]} (scripts sorted by name).
struct CapabilitiesReply {
  std::string status = std::string(kStatusOk);
  std::string host;
  std::string version;
  std::map<std::string, std::string> tags;
  std::vector<ScriptInfo> scripts;

  std::string to_json() const;
  static Result<CapabilitiesReply> from_json(const json::Value& v,
                                             Reading reading = Reading::strict);
};

// --- POST /rotate-serial -------------------------------------------------------------------

struct RotateRequest {
  std::string serial;
  std::string action = "add";
  std::string token;

  // {"serial":S,"action":A}, plus "token" when not empty (the dispatcher sends none).
  std::string to_json() const;
  // The agent's reading: invalid JSON reads as an empty request (then "serial required");
  // serial, action and token are loose scalars; an absent or empty action is "add".
  static RotateRequest parse(std::string_view body);
};

// Success {"status":"ok","action":A,"serial":S,"dispatcher":D}, or {"status":"error","error":E}.
struct RotateReply {
  std::string status;
  std::optional<std::string> action, serial, dispatcher;
  std::optional<std::string> error;

  std::string to_json() const;
  static Result<RotateReply> from_json(const json::Value& v, Reading reading = Reading::strict);
};

// --- POST /renew and /renew-complete -------------------------------------------------------

struct RenewRequest {
  std::string reqid;
  std::string to_json() const;
  static RenewRequest parse(std::string_view body); // lenient, as PingRequest
};

// {"status":"ok","csr":PEM,"reqid":R} or {"status":"error","error":E}.
struct RenewReply {
  std::string status;
  std::optional<std::string> csr, reqid, error;

  std::string to_json() const;
  static Result<RenewReply> from_json(const json::Value& v, Reading reading = Reading::strict);
};

struct RenewCompleteRequest {
  std::string cert;
  std::string ca; // sent by the dispatcher; the agent ignores it (its CA is never replaced)
  std::string reqid;
  std::string to_json() const;
  static RenewCompleteRequest parse(std::string_view body); // lenient
};

// {"status":"ok","reqid":R,"staged":true} or {"status":"error","error":E}.
struct RenewCompleteReply {
  std::string status;
  std::optional<std::string> reqid;
  bool staged = false;
  std::optional<std::string> error;

  std::string to_json() const;
  static Result<RenewCompleteReply> from_json(const json::Value& v,
                                              Reading reading = Reading::strict);
};

// --- Helpers ------------------------------------------------------------------------------

// A member read as the original reads a scalar: a string as is, a number as Perl prints it,
// a boolean as "1"/"0" (JSON::XS booleans), "" when absent, null, an array or an object.
std::string loose_string(const json::Value& obj, const char* field);

// The agent's own name, which any reply may carry as `host` (a string; nullopt otherwise). The
// Perl dispatcher keeps it as reported_hostname when it differs from the registry name.
std::optional<std::string> reported_host(const json::Value& reply);

// A value read as the original numifies `exit`: integers as they are, doubles truncated toward
// zero (clamped to the int64 range), a string holding a decimal integer (spaces around allowed);
// nullopt for anything else.
std::optional<int64_t> loose_integer(const json::Value& v);

} // namespace cx::proto
