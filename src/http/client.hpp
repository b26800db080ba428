// An HTTP/1.x client call: connect (name resolved off the loop), optional TLS with session
// resumption, one request, and one or more responses read by Content-Length (or to EOF).
// Used by the dispatcher engine (7443), the agent's pairing request (7444) and self-ping.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "event/tcp.hpp"
#include "http/parser.hpp"
#include "tls/tls.hpp"

namespace cx::http {

struct ClientOptions {
  std::string host;
  int port = 0;
  std::shared_ptr<tls::Config> tls;    // nullptr: plain HTTP
  std::optional<tls::Session> resume;  // a session to resume (TLS only)
  uint64_t connect_timeout_ms = 60000; // connecting and the TLS handshake
  // An inactivity timeout while waiting for the response: reset by every byte received,
  // as the original's LWP read timeout.
  uint64_t read_timeout_ms = 60000;
  // A bound on the whole call, connect to last byte (0: none). The read timeout alone lets a
  // peer that sends a byte now and then hold the call forever.
  uint64_t total_timeout_ms = 0;
  // How many responses to read from the connection (the pairing exchange sends two).
  int responses = 1;
  // Called from the loop each time body bytes of a response arrive, with the response so far
  // (its head complete, its body growing), before the response completes (ours: live run
  // output read as it comes).
  std::function<void(const Response& partial)> on_body;
  ResponseLimits limits;
};

struct ClientResult {
  // Anything short of the expected responses, by kind:
  //   dns, refused, unreachable, io  connecting (event::Connector) or a broken connection
  //                 (event::connection_error), with the OS wording;
  //   timeout       "connection timed out" (connect_timeout_ms, which covers the TLS
  //                 handshake) or "timed out: no complete response within <n>s"
  //                 (total_timeout_ms), or the OS's "connection timed out" (ETIMEDOUT);
  //   tls           "TLS handshake failed: ..." (tls::Stream);
  //   read_timeout  "read timeout" (read_timeout_ms without a byte);
  //   closed        "connection closed before a complete response";
  //   protocol      the response parser's error ("malformed status line", ...).
  // An HTTP error status is not a failure here: it is a response.
  Status status;
  std::vector<Response> responses; // complete responses, in order
  bool tls_resumed = false;
  std::optional<tls::Session> session; // to resume next time (TLS only)
  std::string peer_serial;             // the server certificate's serial (TLS only)
  std::string local_ip;                // our end of the connection
  uint64_t elapsed_ms = 0;

  const Response* response() const { return responses.empty() ? nullptr : &responses.front(); }
};

class ClientCall {
public:
  using DoneFn = std::function<void(ClientResult)>;
  // Called as each response completes, before the final `done` (for interim answers such as
  // pairing's "pending").
  using ResponseFn = std::function<void(const Response&)>;

  // `request` is the complete request bytes (see format_request). `done` runs exactly once,
  // from the loop. Destroying the call cancels it silently.
  static std::unique_ptr<ClientCall> start(event::Loop& loop, ClientOptions options,
                                           std::string request, DoneFn done,
                                           ResponseFn on_response = nullptr);
  ~ClientCall();
  ClientCall(const ClientCall&) = delete;
  ClientCall& operator=(const ClientCall&) = delete;

  struct State;

private:
  ClientCall() = default;
  std::shared_ptr<State> state_;
};

} // namespace cx::http
