// `ced run --follow`; see follow.hpp.
#include "engine/follow.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/time.hpp"
#include "engine/live.hpp"

namespace cx::engine {

namespace {

// Written whole and flushed, NUL bytes included, so a reader sees each line as it comes.
void emit(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// Cyan, green, yellow, magenta, blue and their bright forms; red is left for errors.
constexpr int kPalette[] = {36, 32, 33, 35, 34, 96, 92, 93, 95, 94};

} // namespace

bool follow_colour(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  if (no_colour && *no_colour) return false;
  return isatty(fd) == 1;
}

FollowPrinter::FollowPrinter(const std::vector<std::string>& hosts, bool json, bool colour)
    : json_(json), colour_(colour), started_ms_(monotonic_ms()) {
  for (const auto& h : hosts) {
    width_ = std::max(width_, h.size());
    colour_of_.emplace(h, colour_of_.size() % std::size(kPalette));
  }
}

LiveFns FollowPrinter::live() {
  LiveFns fns;
  fns.output = [this](const std::string& host, const proto::RunChunk& c) { output(host, c, true); };
  fns.host_done = [this](const HostResult& r) { host_done(r); };
  return fns;
}

uint64_t FollowPrinter::elapsed() const {
  return monotonic_ms() - started_ms_;
}

std::string FollowPrinter::prefix(const std::string& host, bool is_stdout) const {
  std::string name = host;
  if (name.size() < width_) name.append(width_ - name.size(), ' ');
  const char* mark = is_stdout ? " | " : " ! ";
  if (!colour_) return name + mark;
  auto it = colour_of_.find(host);
  int code = it == colour_of_.end() ? kPalette[0] : kPalette[it->second];
  std::string s = "\x1b[" + std::to_string(code) + "m" + name + "\x1b[0m";
  return s + (is_stdout ? mark : std::string(" \x1b[31m!\x1b[0m "));
}

void FollowPrinter::output(const std::string& host, const proto::RunChunk& c, bool live) {
  if (json_) return emit(output_event_json(host, c, live, elapsed()) + "\n");
  print_lines(host, c.is_stdout(), c.data, false);
}

void FollowPrinter::print_lines(const std::string& host, bool is_stdout, std::string_view data,
                                bool all) {
  std::string& pending = partial_[{host, is_stdout}];
  pending.append(data);
  std::string text;
  size_t from = 0;
  for (size_t nl; (nl = pending.find('\n', from)) != std::string::npos; from = nl + 1)
    text += prefix(host, is_stdout) + pending.substr(from, nl - from + 1);
  pending.erase(0, from);
  if (all && !pending.empty()) {
    text += prefix(host, is_stdout) + pending + "\n";
    pending.clear();
  }
  if (!text.empty()) emit(text);
}

void FollowPrinter::host_done(const HostResult& r) {
  if (!r.streamed)
    for (const auto& c : output_of(r))
      output(r.name, c, false);
  if (json_) return emit(result_event_json(r, elapsed()) + "\n");
  print_lines(r.name, true, "", true);
  print_lines(r.name, false, "", true);
}

void FollowPrinter::batch(const BatchReport& b) {
  if (json_) emit(batch_event_json(b, elapsed()) + "\n");
}

} // namespace cx::engine
