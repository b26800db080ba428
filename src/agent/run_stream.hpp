// Live output of a sync /run (ours; docs/COMPATIBILITY.md): with "stream": true the agent
// answers application/x-ndjson, one proto::RunChunk line per piece of output as the script
// produces it, then the usual RunResult as the last line. Output is sent in whole lines where
// lines exist, at most proto::kMaxChunkBytes per chunk; a partial line is sent once it has
// waited kPartialLineMs, so a prompt or a progress dot shows without its newline. Only what
// the output cap keeps is streamed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "event/loop.hpp"

namespace cx::agent {

inline constexpr uint64_t kPartialLineMs = 200;

// Takes from `pending` the pieces ready to send: complete lines, grouped up to `max` bytes a
// piece; a run of more than `max` bytes without a newline is cut at a UTF-8 character
// boundary; with `all`, the rest as well. What is left in `pending` is a partial line.
std::vector<std::string> take_chunks(std::string& pending, size_t max, bool all);

class OutputStream {
public:
  // `send` gets each NDJSON line (LF-terminated) to write.
  OutputStream(event::Loop& loop, std::function<void(std::string line)> send);
  // The script wrote `data` (the part the cap keeps) on stdout or stderr.
  void output(bool is_out, std::string_view data);
  // The script has ended: sends what is pending of both streams.
  void flush();

private:
  void send_ready(bool is_out, bool all);
  void arm();

  std::function<void(std::string)> send_;
  event::Timer timer_;
  uint64_t started_ms_;
  std::string pending_out_, pending_err_;
};

} // namespace cx::agent
