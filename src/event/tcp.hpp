// TCP over libuv: a stream (accepted or connected), a listener, and a connector that resolves a
// name on the thread pool and connects within a deadline.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/address.hpp"
#include "event/loop.hpp"
#include "event/transport.hpp"

namespace cx::event {

// The kind of a libuv error on a connection: ECONNREFUSED is refused, EHOSTUNREACH and
// ENETUNREACH unreachable, ETIMEDOUT timeout, a getaddrinfo error (UV_EAI_*) dns, anything
// else io.
ErrorKind connection_error_kind(int uv_code);
// That kind with libuv's wording ("connection refused").
Status connection_error(int uv_code);

class TcpStream final : public Transport {
public:
  using DoneFn = std::function<void(int status)>;

  explicit TcpStream(Loop& loop);
  ~TcpStream() override { close(); }
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;

  void read_start(DataFn on_data, EndFn on_end) override;
  void read_stop() override;
  void write(std::string data) override { write(std::move(data), nullptr); }
  // Queues a copy of `data`; `done` (optional) runs once it is handed to the kernel, unless
  // the stream is closed first.
  void write(std::string data, DoneFn done);
  // Bytes queued but not yet written to the socket.
  size_t write_queue_bytes() const override;
  // Bytes the peer has sent that the kernel holds and nothing has read yet (FIONREAD).
  size_t unread_bytes() const;
  // Half-closes after every queued write has been flushed.
  void shutdown(DoneFn done = nullptr);
  void end(std::function<void()> done = nullptr) override;
  // Closes at once; queued writes are dropped and no further callbacks run.
  void close() override;
  bool is_open() const override { return h_ != nullptr; }

  void set_nodelay(bool on);
  SockAddr peer() const override;
  SockAddr local() const;

  uv_tcp_t* handle() { return h_; }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(h_); }

private:
  friend class TcpListener;
  friend class Connector;
  uv_tcp_t* h_;
  DataFn on_data_;
  EndFn on_end_;
  std::unique_ptr<Timer> linger_;
};

class TcpListener {
public:
  explicit TcpListener(Loop& loop);
  ~TcpListener() { close(); }
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Binds (SO_REUSEADDR, as libuv does) and listens; port 0 picks a free port.
  // `on_connection` runs for each pending connection and should call accept().
  Status listen(const std::string& bind_ip, int port, int backlog,
                std::function<void()> on_connection);
  // Accepts one pending connection into a fresh stream.
  Result<std::unique_ptr<TcpStream>> accept();
  int local_port() const;
  void close();

private:
  Loop& loop_;
  uv_tcp_t* h_;
  std::function<void()> on_connection_;
};

// Resolves and connects. Destroying the Connector cancels the attempt: no callback runs after.
class Connector {
public:
  using DoneFn = std::function<void(Result<std::unique_ptr<TcpStream>>)>;
  explicit Connector(Loop& loop);
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // `host` is an IP literal or a name (resolved with getaddrinfo on the thread pool). Each
  // address is tried in turn until one connects or `timeout_ms` (total) passes. Errors carry
  // their kind (dns, refused, unreachable, timeout, io) and the OS wording ("connection
  // refused", "connection timed out", "cannot resolve host 'x': ..."), which operators see
  // where no table rewrites it (the pairing requester's "Pairing failed: ...").
  void connect(const std::string& host, int port, uint64_t timeout_ms, DoneFn done);

  struct State; // shared with in-flight libuv requests, which may outlive this object

private:
  std::shared_ptr<State> state_;
};

} // namespace cx::event
