// The executor's unix-socket frames (agent-and-wire §4.8), big-endian:
//   request  = u32 total_len, then total_len bytes: field reqid, field dispatcher_id,
//              field script_name, field stdin_bytes, u32 argc, argc x field arg
//   response = i32 exit, field stdout, field stderr
//   field    = u32 len, len bytes
// The agent front-end encodes requests and decodes responses; the executor (src/exec/) does
// the reverse with the same functions. The words below are part of the wire: the original's
// C executor sends the refusals and the truncation marker, and both sides of ours agree on the
// timeout line (docs/COMPATIBILITY.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::proto {

inline constexpr uint32_t kMaxFrameBytes = 16u << 20; // a request's total_len: 1..16 MiB
inline constexpr uint32_t kMaxFrameArgs = 256;
// A response field (script output) above this is refused rather than buffered.
inline constexpr uint32_t kMaxResponseField = 64u << 20;

// The executor's refusals (exit -1), each the whole of stderr.
inline constexpr std::string_view kExecMalformed = "executor: malformed request\n";
inline constexpr std::string_view kExecConfigError = "executor: config error\n";
inline constexpr std::string_view kExecNotPermitted = "executor: script not permitted\n";
inline constexpr std::string_view kExecNotInScriptDirs = "executor: script not in script_dirs\n";
inline constexpr std::string_view kExecUndefinedProfile = "executor: undefined profile\n";

// Appended to a stream cut at the output cap (the original's marker, at its 16 MiB cap).
inline constexpr std::string_view kExecTruncatedMarker = "\n[output truncated]\n";
// The original executor's cap on each captured stream.
inline constexpr uint64_t kExecDefaultOutputCap = 16u << 20;

// The last line of stderr when the executor killed a script at its deadline.
std::string exec_timeout_line(int64_t seconds);

struct ExecRequest {
  std::string reqid;
  std::string dispatcher_id;
  std::string script;
  std::string stdin_bytes;
  std::vector<std::string> args;
};

struct ExecResponse {
  int32_t exit = -1;
  std::string out, err;
};

// Fails if the frame would exceed kMaxFrameBytes or kMaxFrameArgs.
Result<std::string> encode_request(const ExecRequest& req);
std::string encode_response(const ExecResponse& resp);

// Incremental decoding from a byte stream. need_more: feed more bytes; error: the bytes can
// never form a valid frame (the message says why: "malformed request", "frame too large").
enum class FrameStatus { need_more, complete, error };
// What a decode says besides the message itself; need_more until one of the setters runs.
struct FrameDecodeState {
  FrameStatus status = FrameStatus::need_more;
  size_t consumed = 0; // the frame's bytes, once complete
  std::string error;

  void complete(size_t frame_bytes) {
    status = FrameStatus::complete;
    consumed = frame_bytes;
  }
  void fail(std::string why) {
    status = FrameStatus::error;
    error = std::move(why);
  }
};

struct RequestDecode : FrameDecodeState {
  ExecRequest request;
};
RequestDecode decode_request(std::string_view bytes);

// What the agent reads back out of an executor's answer: the limits the executor applied,
// with their markers taken out of the output so that the result looks as a direct run's.
struct ExecLimits {
  bool truncated = false;           // a stream ended with kExecTruncatedMarker
  std::optional<int64_t> timed_out; // the deadline in seconds, from the timeout line
};
ExecLimits take_exec_limits(ExecResponse& resp);

struct ResponseDecode : FrameDecodeState {
  ExecResponse response;
};
ResponseDecode decode_response(std::string_view bytes);

} // namespace cx::proto
