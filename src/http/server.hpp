// A small HTTP/1.x server over plain TCP or TLS, shared by the agent (7443), the pairing
// listener (7444) and the API (7445). It owns the connections, the optional TLS handshake,
// the bounded request parser, and what keeps slow or flooding clients from crowding out the
// others: admission by source address at accept (admission.hpp), shedding the oldest idle
// connection when full, and deadlines for the handshake, the request head and its body. The
// applet supplies the policy through hooks (admission before TLS, checks after the handshake,
// the head, the request handler). Handlers may answer later: a Connection is shared, and
// answering a connection that has gone away is a no-op.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "event/tcp.hpp"
#include "http/admission.hpp"
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
  const std::string& peer_ip() const { return ip_; }
  // The TLS stream after the handshake, or nullptr on a plain connection.
  tls::Stream* tls() const { return tls_; }
  // The peer certificate's serial as lower-case hex ("" without TLS or without a cert).
  std::string peer_serial() const { return tls_ ? tls_->peer_serial() : std::string(); }

  // Answers with the original's framing. The connection then ends, unless the client asked
  // for keep-alive, the server allows it and `may_keep_alive` is true: then the next request
  // is read.
  void respond(int code, std::string_view body, bool may_keep_alive = true,
               std::string_view content_type = "application/json");
  // Starts a streamed answer (format_stream_head): its body is then written with send() and
  // ends with finish(). The connection is not kept alive.
  void begin_stream(int code, std::string_view content_type,
                    const std::vector<HeaderField>& extra_headers = {});
  // Writes raw bytes and keeps the connection open (the pairing listener's first response,
  // a streamed answer's body).
  void send(std::string bytes);
  // Bytes written and not yet taken by the kernel (a streamed answer's reader falling behind).
  size_t queued_bytes() const;
  // Ends the connection cleanly after what is queued.
  void finish();
  // Drops the connection at once, with no response.
  void abort();
  bool closed() const { return closed_; }
  // Runs once when the connection is gone, for whoever is working on its request.
  void on_close(std::function<void()> fn) { on_close_ = std::move(fn); }

  Phase phase() const { return phase_; }
  // The applet knows who the peer is (the agent: a trusted dispatcher's certificate). When the
  // server is full, connections of peers not known are shed first.
  void set_authenticated() { authenticated_ = true; }
  bool authenticated() const { return authenticated_; }

  // A slot for the applet's per-connection state.
  std::shared_ptr<void> user;

private:
  friend class Server;
  // Where receiving a request stands, for its deadlines.
  enum class Stage : uint8_t {
    idle, // between keep-alive requests: keep_alive_idle_ms
    head, // from the first byte we wait for until the headers are in
    body, // from the end of the headers until the body is in
  };

  Connection(Server& server, uint64_t id, std::unique_ptr<event::TcpStream> tcp, Phase phase,
             const event::SockAddr& peer);
  void start_reading();
  void on_data(std::string_view data);
  void on_end(int status);
  void begin_stage(Stage stage);
  void on_deadline();
  void set_phase(Phase phase);
  void mark_closed();

  Server& server_;
  uint64_t id_;
  event::SockAddr peer_;
  std::string ip_;
  std::unique_ptr<event::TcpStream> tcp_; // before the handshake / plain
  std::unique_ptr<tls::Stream> tls_owned_;
  tls::Stream* tls_ = nullptr;
  event::Transport* transport_ = nullptr;
  std::unique_ptr<event::Timer> timer_;
  RequestParser parser_;
  std::string pending_; // bytes received while a request is being handled
  Phase phase_;
  Stage stage_ = Stage::head;
  uint64_t request_started_ms_ = 0;
  bool authenticated_ = false;
  bool in_request_ = false;
  bool keep_alive_ = false;
  bool closed_ = false;
  bool ending_ = false;
  std::function<void()> on_close_;
};

// The limits an applet may change while the server runs (the agent's SIGHUP); a deadline
// already running is kept.
struct ServerTuning {
  AdmissionLimits admission;
  // Each a total from the start of its stage, within request_timeout_ms (0: no limit of its
  // own): the request line and headers from the first byte we wait for, then the body from
  // the end of the headers.
  uint64_t head_timeout_ms = 0;
  uint64_t body_timeout_ms = 0;
};

// What the server has done about crowding, since it started.
struct ServerStats {
  uint64_t accepted = 0;  // connections admitted
  uint64_t refused = 0;   // closed at accept by the admission limits
  uint64_t shed = 0;      // dropped to make room for a new connection
  uint64_t timed_out = 0; // dropped at the head or the body deadline
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
  ServerTuning tuning;
};

struct ServerHooks {
  // Before the TLS handshake, from the TCP peer address. false drops the connection silently.
  std::function<bool(const event::SockAddr& peer)> admit;
  // A TLS handshake failed or timed out.
  std::function<void(const event::SockAddr& peer, const std::string& reason)> handshake_failed;
  // After the handshake (or at once for plain HTTP). false: the hook has answered or aborted
  // the connection itself, and no request is read.
  std::function<bool(const std::shared_ptr<Connection>& conn)> ready;
  // A request did not arrive in time: `stage` is "head" or "body". The connection is then
  // dropped without an answer (and the event counted in the crowding report).
  std::function<void(Connection& conn, std::string_view stage)> timed_out;
  // The request line and the headers are in, the body may not be. false: the hook has
  // answered or aborted the connection itself; the body is not read and `request` not called.
  std::function<bool(const std::shared_ptr<Connection>& conn, Request& head)> head;
  // One complete request.
  std::function<void(const std::shared_ptr<Connection>& conn, Request& req)> request;
  // A malformed or oversized request (the parser tells what). The hook answers it; by
  // default the connection is dropped.
  std::function<void(const std::shared_ptr<Connection>& conn, const RequestParser& parser)>
      bad_request;
  // A connection is gone (after any response was flushed).
  std::function<void(Connection& conn)> closed;
  // Crowding, summed up at most once a second: what was refused at accept (kind "refused",
  // reason refusal_reason()), shed to make room ("shed", "full"), dropped at a deadline
  // ("timeout", "head" or "body"), and what the applet noted itself, since the last report.
  std::function<void(const std::vector<EventTally::Entry>& events)> crowding;
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
  // What one source address holds now.
  AddressCount from(const std::string& ip) const { return addresses_.count(ip); }
  const ServerStats& stats() const { return stats_; }
  void retune(const ServerTuning& tuning) { options_.tuning = tuning; }
  // Counts an event of the applet's own in the next crowding report.
  void note_crowding(std::string_view kind, std::string_view reason, const std::string& peer);
  event::Loop& loop() { return loop_; }
  const ServerOptions& options() const { return options_; }

private:
  friend class Connection;
  void on_accept();
  // Drops the oldest connection that is not handling a request, a peer not authenticated
  // first. false when every connection is handling one.
  bool shed_oldest();
  void start_handshake(const std::shared_ptr<Connection>& conn);
  // A handshake from `ip` is over (done, failed or dropped): its next queued one may start.
  void handshake_ended(const std::string& ip);
  // A connection that waited for its turn is gone: it leaves its address's queue.
  void forget_queued(const std::string& ip, uint64_t id);
  void handshake_done(const std::shared_ptr<Connection>& conn, Status st);
  void release(uint64_t id);

  event::Loop& loop_;
  ServerOptions options_;
  ServerHooks hooks_;
  event::TcpListener listener_;
  uint64_t next_id_ = 1;
  // By id, which is the order of arrival: the first one that may be shed is the oldest.
  std::map<uint64_t, std::shared_ptr<Connection>> conns_;
  AddressBook addresses_;
  // Per address, connections waiting for their turn to handshake, oldest first.
  std::unordered_map<std::string, std::deque<std::weak_ptr<Connection>>> queued_;
  ServerStats stats_;
  EventTally crowding_;
  event::Timer crowding_timer_;
  size_t peak_since_trim_ = 0; // open connections at most, since memory was last returned
  event::Timer trim_timer_;
};

} // namespace cx::http
