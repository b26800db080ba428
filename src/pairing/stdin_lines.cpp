// Lines from stdin through libuv; see stdin_lines.hpp.
#include "pairing/stdin_lines.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace cx::pairing {

StdinLines::~StdinLines() {
  stop();
}

bool StdinLines::start(LineFn on_line, EofFn on_eof) {
  stop();
  uv_handle_type type = uv_guess_handle(STDIN_FILENO);
  saved_flags_ = ::fcntl(STDIN_FILENO, F_GETFL);
  if (type == UV_TTY) {
    auto* tty = new uv_tty_t;
    if (uv_tty_init(loop_.get(), tty, STDIN_FILENO, 1) != 0) {
      delete tty;
      return false;
    }
    is_tty_ = true;
    h_ = reinterpret_cast<uv_stream_t*>(tty);
  } else if (type == UV_NAMED_PIPE || type == UV_TCP) {
    auto* pipe = new uv_pipe_t;
    uv_pipe_init(loop_.get(), pipe, 0);
    if (uv_pipe_open(pipe, STDIN_FILENO) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(pipe),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
      return false;
    }
    h_ = reinterpret_cast<uv_stream_t*>(pipe);
  } else {
    return false;
  }
  on_line_ = std::move(on_line);
  on_eof_ = std::move(on_eof);
  h_->data = this;
  int rc = uv_read_start(
      h_,
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<StdinLines*>(s->data);
        if (self && n > 0) self->on_data(buf->base, static_cast<size_t>(n));
        delete[] buf->base;
        if (self && n < 0) self->on_end();
      });
  if (rc != 0) {
    stop();
    return false;
  }
  return true;
}

void StdinLines::on_data(const char* data, size_t n) {
  partial_.append(data, n);
  size_t pos;
  while (h_ && (pos = partial_.find('\n')) != std::string::npos) {
    std::string line = partial_.substr(0, pos);
    partial_.erase(0, pos + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto fn = on_line_; // the callback may stop this reader
    fn(line);
  }
}

void StdinLines::on_end() {
  std::string last = std::move(partial_);
  partial_.clear();
  auto line_fn = on_line_;
  auto eof_fn = on_eof_;
  stop();
  if (!last.empty() && line_fn) line_fn(last);
  if (eof_fn) eof_fn();
}

void StdinLines::stop() {
  if (!h_) return;
  h_->data = nullptr;
  if (is_tty_) uv_tty_reset_mode();
  // libuv made the descriptor non-blocking; the shell or parent that shares it expects the
  // flags it had. Restore them before the close below releases the descriptor.
  if (saved_flags_ >= 0) ::fcntl(STDIN_FILENO, F_SETFL, saved_flags_);
  saved_flags_ = -1;
  auto* handle = reinterpret_cast<uv_handle_t*>(h_);
  if (is_tty_)
    uv_close(handle, [](uv_handle_t* h) { delete reinterpret_cast<uv_tty_t*>(h); });
  else
    uv_close(handle, [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
  h_ = nullptr;
  is_tty_ = false;
  on_line_ = nullptr;
  on_eof_ = nullptr;
}

} // namespace cx::pairing
