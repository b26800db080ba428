// Live output from agents (ours; docs/COMPATIBILITY.md): the dispatcher's reading of a streamed
// /run answer. An agent of ours asked for "stream": true answers application/x-ndjson: RunChunk
// lines as the script writes, then the usual RunResult line. The original's agent ignores the
// key and answers one JSON object; the Content-Type tells the two apart, so both work.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/result.hpp"
#include "engine/rollout.hpp"
#include "proto/agent_wire.hpp"

namespace cx::engine {

// Whether a Content-Type header names NDJSON (parameters and case ignored).
bool is_ndjson(const std::string* content_type);

// Reads an NDJSON body as it grows: every complete line that is a RunChunk goes to the
// callback once; the last line that is not a chunk is the result.
class NdjsonReader {
public:
  using ChunkFn = std::function<void(const proto::RunChunk&)>;
  // `body` is the whole body so far (it only grows). With `at_end`, a last line without its
  // newline counts too.
  void feed(std::string_view body, bool at_end, const ChunkFn& on_chunk);
  // The RunResult line, once one has been read.
  const std::optional<std::string>& result() const { return result_; }
  size_t chunks() const { return chunks_; }

private:
  void line(std::string_view text, const ChunkFn& on_chunk);
  size_t scanned_ = 0;
  size_t chunks_ = 0;
  std::optional<std::string> result_;
};

// The events of a followed run (`ced run --json --follow`, the API's /run with "stream": true),
// one JSON object each; `t` is milliseconds since the run started, on the dispatcher's clock.
//   {"event":"output","host":H,"stream":"stdout"|"stderr","data":D,"ms":N,"t":T}
//     a piece of output; `ms` (the agent's time since the script started) only when the agent
//     sent it live, not for output read from the result of an agent that answered whole;
//   {"event":"result","host":H,"t":T,"result":{...}}  a host's result, as the run reports it;
//   {"event":"batch","t":T,"batch":{...}}  a batch of a rollout has ended (write_batches).
// The last line is then the usual answer (the CLI's --json object, the API's response body).
std::string output_event_json(const std::string& host, const proto::RunChunk& chunk, bool live,
                              uint64_t t_ms);
std::string result_event_json(const HostResult& result, uint64_t t_ms);
std::string batch_event_json(const BatchReport& batch, uint64_t t_ms);

// The output of a host whose agent answered whole (no live chunks): its stdout, then its
// stderr, as chunks, for a follower to show when the result arrives.
std::vector<proto::RunChunk> output_of(const HostResult& result);

} // namespace cx::engine
