// A small HTTP/1.x server over plain TCP or TLS, shared by the agent (7443), the pairing
// listener (7444) and the API (7445). It owns the connections, the optional TLS handshake,
// the bounded request parser and the timeouts that keep slow clients from holding a slot;
// the applet supplies the policy through hooks (admission before TLS, checks after the
// handshake, the request handler). Handlers may answer later: a Connection is shared, and
// answering a connection that has gone away is a no-op.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "event/tcp.hpp"
#include "http/parser.hpp"
#include "http/writer.hpp"
#include "tls/tls.hpp"

namespace cx::http {

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
public:
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  // The TCP peer, known before any TLS handshake.
  const event::SockAddr& peer() const { return peer_; }
  std::string peer_ip() const { return peer_.ip(); }
  // The TLS stream after the handshake, or nullptr on a plain connection.
  tls::Stream* tls() const { return tls_; }
  // The peer certificate's serial as lower-case hex ("" without TLS or without a cert).
  std::string peer_serial() const { return tls_ ? tls_->peer_serial() : std::string(); }

  // Answers with the original's framing. The connection then ends, unless the client asked
  // for keep-alive, the server allows it and `may_keep_alive` is true: then the next request
  // is read.
  void respond(int code, std::string_view body, bool may_keep_alive = true);
  // Writes raw bytes and keeps the connection open (the pairing listener's first response).
  void send(std::string bytes);
  // Ends the connection cleanly after what is queued.
  void finish();
  // Drops the connection at once, with no response.
  void abort();
  bool closed() const { return closed_; }
  // Runs once when the connection is gone, for whoever is working on its request.
  void on_close(std::function<void()> fn) { on_close_ = std::move(fn); }

  // A slot for the applet's per-connection state.
  std::shared_ptr<void> user;

private:
  friend class Server;
  Connection(Server& server, uint64_t id, std::unique_ptr<event::TcpStream> tcp);
  void start_reading();
  void on_data(std::string_view data);
  void on_end(int status);
  void parse_buffered();
  void arm_request_timer(uint64_t ms);
  void mark_closed();

  Server& server_;
  uint64_t id_;
  event::SockAddr peer_;
  std::unique_ptr<event::TcpStream> tcp_; // before the handshake / plain
  std::unique_ptr<tls::Stream> tls_owned_;
  tls::Stream* tls_ = nullptr;
  event::Transport* transport_ = nullptr;
  std::unique_ptr<event::Timer> timer_;
  RequestParser parser_;
  std::string pending_; // bytes received while a request is being handled
  bool in_request_ = false;
  bool keep_alive_ = false;
  bool closed_ = false;
  bool ending_ = false;
  std::function<void()> on_close_;
};

struct ServerOptions {
  std::string bind_ip = "0.0.0.0";
  int port = 0;
  // Connections the kernel queues before we accept them (capped by net.core.somaxconn). The
  // original used 10; a burst of 200 clients overflowed 128 and each dropped SYN cost a 1 s
  // retransmit (test/bench/agent_bench.cpp counts ListenOverflows).
  int backlog = 1024;
  std::shared_ptr<tls::Config> tls; // nullptr: plain HTTP
  uint64_t handshake_timeout_ms = 10000;
  // From the first byte we wait for, until a complete request has arrived; a client that
  // sends half a request and stalls is dropped, and never holds up anyone else.
  uint64_t request_timeout_ms = 30000;
  // How long a keep-alive connection may sit idle between requests.
  uint64_t keep_alive_idle_ms = 15000;
  RequestLimits limits;
  bool allow_keep_alive = false;
};

struct ServerHooks {
  // Before the TLS handshake, from the TCP peer address. false drops the connection silently.
  std::function<bool(const event::SockAddr& peer)> admit;
  // A TLS handshake failed or timed out.
  std::function<void(const event::SockAddr& peer, const std::string& reason)> handshake_failed;
  // After the handshake (or at once for plain HTTP). false: the hook has answered or aborted
  // the connection itself, and no request is read.
  std::function<bool(const std::shared_ptr<Connection>& conn)> ready;
  // One complete request.
  std::function<void(const std::shared_ptr<Connection>& conn, Request& req)> request;
  // A malformed or oversized request (the parser tells what). The hook answers it; by
  // default the connection is dropped.
  std::function<void(const std::shared_ptr<Connection>& conn, const RequestParser& parser)>
      bad_request;
  // A connection is gone (after any response was flushed).
  std::function<void(Connection& conn)> closed;
};

class Server {
public:
  Server(event::Loop& loop, ServerOptions options, ServerHooks hooks);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status listen();
  int port() const { return listener_.local_port(); }
  // Stops accepting; connections already open carry on.
  void stop_accepting();
  // Connections accepted and not yet closed (handshaking ones included).
  size_t open_connections() const { return conns_.size(); }
  // Connections that have a request being handled.
  size_t busy_connections() const;
  event::Loop& loop() { return loop_; }
  const ServerOptions& options() const { return options_; }

private:
  friend class Connection;
  void on_accept();
  void handshake_done(const std::shared_ptr<Connection>& conn, Status st);
  void release(uint64_t id);

  event::Loop& loop_;
  ServerOptions options_;
  ServerHooks hooks_;
  event::TcpListener listener_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::shared_ptr<Connection>> conns_;
};

} // namespace cx::http
