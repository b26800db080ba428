// Operator input for the interactive pairing prompt: lines from stdin read through the libuv
// loop, from a terminal or a pipe, so waiting for an answer never blocks the listener.
#pragma once

#include <functional>
#include <string>

#include "event/loop.hpp"

namespace cx::pairing {

class StdinLines {
public:
  using LineFn = std::function<void(const std::string& line)>;
  using EofFn = std::function<void()>;

  explicit StdinLines(event::Loop& loop) : loop_(loop) {}
  ~StdinLines();
  StdinLines(const StdinLines&) = delete;
  StdinLines& operator=(const StdinLines&) = delete;

  // Starts reading when stdin is a terminal or a pipe/socket and returns true; returns false
  // (and calls nothing) for anything else, e.g. /dev/null or a regular file.
  bool start(LineFn on_line, EofFn on_eof);
  // Stops reading and restores stdin's file status flags.
  void stop();
  bool active() const { return h_ != nullptr; }

private:
  void on_data(const char* data, size_t n);
  void on_end();

  event::Loop& loop_;
  uv_stream_t* h_ = nullptr;
  bool is_tty_ = false;
  int saved_flags_ = -1;
  std::string partial_;
  LineFn on_line_;
  EofFn on_eof_;
};

} // namespace cx::pairing
