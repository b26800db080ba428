// Incremental, bounded HTTP/1.0 and 1.1 parsers: RequestParser for our servers (7443, 7444,
// 7445) and ResponseParser for our clients. Feed them chunks as they arrive from the network.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/framer.hpp"
#include "http/message.hpp"

namespace cx::http {

namespace detail {

// The words of the error messages that differ between requests and responses.
struct ErrorWords {
  std::string_view empty;               // "empty request"
  std::string_view truncated;           // "truncated request"
  std::string_view bad_start_line;      // "malformed request line"
  std::string_view start_line_too_long; // "request line too long"
  std::string_view body_too_large;      // "request too large"
  std::string_view fallback;            // "bad request"
};

// What RequestParser and ResponseParser share: the framer, the message it fills, the
// start-line rule of that message (the request line or the status line) and the error
// messages. Each parser adds its limits and its accessors. After complete or error, feed()
// consumes nothing until reset().
template <typename Message> class MessageParser {
public:
  Progress feed(std::string_view data);
  // The peer closed its side: completes an EOF-delimited body (responses only), otherwise
  // reports empty (no start line at all) or truncated.
  ParseStatus finish();
  // Start over for the next message on the same connection; limits are kept.
  void reset();

  ParseStatus status() const;
  // The start line and the headers are in: the message's head is valid, its body may not be.
  bool head_complete() const { return framer_.head_done(); }
  ParseError error() const { return framer_.error(); }
  // A short lower-case description, e.g. "empty request", "too many headers".
  std::string_view error_message() const;

protected:
  MessageParser(FrameLimits limits, const ErrorWords& words) : framer_(limits), words_(&words) {}

  Framer framer_;
  Message message_;

private:
  const ErrorWords* words_;
};

extern template class MessageParser<Request>;
extern template class MessageParser<Response>;

} // namespace detail

struct RequestLimits {
  // More header lines than this → 431. The original's limit; the 33rd line fails.
  size_t max_header_lines = 32;
  // Content-Length above this → 413, decided from the header before any body byte is read.
  // The pairing listener (7444) sets 65536.
  size_t max_body = 1048576;
  // The request line, up to its LF → 400 beyond this. The original had no bound; 8 KiB is
  // the common server default (Apache's LimitRequestLine, nginx's header buffer) and is far
  // more than our longest path, /result/<reqid>, needs.
  size_t max_request_line = 8192;
  // The whole header section → 431 beyond this. 32 lines of 2 KiB each is generous for the
  // few headers any client sends (Host, Authorization, Content-*), and with max_body it
  // bounds what one connection can make us buffer.
  size_t max_header_bytes = 65536;
};

// Parses one request at a time from a byte stream:
//
//   Progress p = parser.feed(chunk);     // p.consumed <= chunk.size()
//   if (p.status == ParseStatus::complete) {
//     handle(parser.request());
//     parser.reset();                    // keep-alive: the rest of `chunk` is the next request
//     parser.feed(chunk.substr(p.consumed));
//   }
//   on EOF: parser.finish();             // error() == ParseError::empty → "empty request"
//
// finish() completes nothing for a request: there is no EOF-delimited request body.
class RequestParser : public detail::MessageParser<Request> {
public:
  explicit RequestParser(RequestLimits limits = {});

  // Valid once status() is complete.
  const Request& request() const { return message_; }
  Request& request() { return message_; }
  bool wants_keep_alive() const { return message_.wants_keep_alive(); }

  // 400, 413 or 431 for an error, 0 otherwise. Callers wrap it in their own JSON body, with
  // error_message() ("empty request", "too many headers", ...).
  int error_status() const;
};

struct ResponseLimits {
  size_t max_status_line = 8192;
  // Our peers send two or three headers; leave room for a proxy or a future server.
  size_t max_header_lines = 64;
  size_t max_header_bytes = 65536;
  // A sync run returns the script's whole stdout and stderr in one body.
  size_t max_body = 64 * 1024 * 1024;
};

// Parses responses from a byte stream. A body is framed by Content-Length, or runs to EOF
// when there is none (call finish() at EOF to complete it). The pairing client reads two
// responses from one connection: after the first completes, reset() and feed the bytes
// after `consumed`.
class ResponseParser : public detail::MessageParser<Response> {
public:
  explicit ResponseParser(ResponseLimits limits = {});

  const Response& response() const { return message_; }
  Response& response() { return message_; }
};

} // namespace cx::http
