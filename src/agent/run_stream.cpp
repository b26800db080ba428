// Live output of a sync /run; see run_stream.hpp.
#include "agent/run_stream.hpp"

#include "base/time.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

namespace {

// The largest cut at or before `n` that does not split a UTF-8 sequence (at most three
// continuation bytes are given back; bytes that are not UTF-8 at all are cut anywhere).
size_t utf8_cut(std::string_view s, size_t n) {
  if (n >= s.size()) return s.size();
  size_t cut = n;
  for (int back = 0; back < 3 && cut > 0; ++back) {
    auto c = static_cast<unsigned char>(s[cut]);
    if ((c & 0xC0) != 0x80) return cut; // s[cut] starts a character
    --cut;
  }
  auto c = static_cast<unsigned char>(s[cut]);
  return (c & 0xC0) != 0x80 && cut > 0 ? cut : n;
}

} // namespace

std::vector<std::string> take_chunks(std::string& pending, size_t max, bool all) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from < pending.size()) {
    std::string_view rest(pending.data() + from, pending.size() - from);
    size_t last_nl = rest.substr(0, max).rfind('\n');
    size_t take = 0;
    if (last_nl != std::string_view::npos)
      take = last_nl + 1; // whole lines, as many as fit
    else if (rest.size() > max)
      take = utf8_cut(rest, max); // one long line: cut it
    else if (all)
      take = rest.size(); // the partial line, when everything goes
    if (take == 0) break;
    out.emplace_back(rest.substr(0, take));
    from += take;
  }
  pending.erase(0, from);
  return out;
}

OutputStream::OutputStream(event::Loop& loop, std::function<void(std::string)> send)
    : send_(std::move(send)), timer_(loop), started_ms_(monotonic_ms()) {}

void OutputStream::output(bool is_out, std::string_view data) {
  (is_out ? pending_out_ : pending_err_).append(data);
  send_ready(is_out, false);
  arm();
}

void OutputStream::flush() {
  timer_.stop();
  send_ready(true, true);
  send_ready(false, true);
}

void OutputStream::send_ready(bool is_out, bool all) {
  std::string& pending = is_out ? pending_out_ : pending_err_;
  proto::RunChunk c;
  c.stream = is_out ? "stdout" : "stderr";
  c.ms = static_cast<int64_t>(monotonic_ms() - started_ms_);
  for (std::string& piece : take_chunks(pending, proto::kMaxChunkBytes, all)) {
    c.data = std::move(piece);
    send_(c.to_json() + "\n");
  }
}

// A partial line left waiting is sent after kPartialLineMs.
void OutputStream::arm() {
  if (pending_out_.empty() && pending_err_.empty()) {
    timer_.stop();
    return;
  }
  if (timer_.active()) return;
  timer_.start(kPartialLineMs, [this] {
    send_ready(true, true);
    send_ready(false, true);
  });
}

} // namespace cx::agent
