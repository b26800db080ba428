// A byte stream the HTTP layer can read and write without knowing whether it is plain TCP or
// TLS: event::TcpStream and tls::Stream both implement it.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "event/address.hpp"

namespace cx::event {

class Transport {
public:
  using DataFn = std::function<void(std::string_view data)>;
  // status: UV_EOF for an orderly end (TLS: close_notify or TCP FIN), else a negative error.
  using EndFn = std::function<void(int status)>;

  virtual ~Transport() = default;
  virtual void read_start(DataFn on_data, EndFn on_end) = 0;
  virtual void read_stop() = 0;
  virtual void write(std::string data) = 0;
  // Flushes what is queued, ends the connection cleanly, and closes it. The peer's remaining
  // input is drained for a short linger period first, so our last response is not lost to a
  // reset. `done` (optional) runs once the connection is closed.
  virtual void end(std::function<void()> done = nullptr) = 0;
  // Closes at once; nothing queued is sent and no callback runs afterwards.
  virtual void close() = 0;
  virtual bool is_open() const = 0;
  virtual SockAddr peer() const = 0;
  virtual size_t write_queue_bytes() const = 0;
};

} // namespace cx::event
