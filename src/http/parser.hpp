// Incremental, bounded HTTP/1.0 and 1.1 parsers: RequestParser for our servers (7443, 7444,
// 7445) and ResponseParser for our clients. Feed them chunks as they arrive from the network.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/framer.hpp"
#include "http/message.hpp"

namespace cx::http {

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
// After complete or error, feed() consumes nothing until reset().
class RequestParser {
public:
  explicit RequestParser(RequestLimits limits = {});

  Progress feed(std::string_view data);
  // The peer closed its side. Completes nothing for a request (there is no EOF-delimited
  // request body); reports empty (no request line at all) or truncated.
  ParseStatus finish();
  // Start over for the next request on the same connection; limits are kept.
  void reset();

  ParseStatus status() const;
  // Valid once status() is complete.
  const Request& request() const { return request_; }
  Request& request() { return request_; }
  bool wants_keep_alive() const { return request_.wants_keep_alive(); }

  ParseError error() const { return framer_.error(); }
  // 400, 413 or 431 for an error, 0 otherwise. Callers wrap it in their own JSON body.
  int error_status() const;
  // A short lower-case description, e.g. "empty request", "too many headers".
  std::string_view error_message() const;

private:
  detail::Framer framer_;
  Request request_;
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
class ResponseParser {
public:
  explicit ResponseParser(ResponseLimits limits = {});

  Progress feed(std::string_view data);
  // The peer closed: completes an EOF-delimited body, otherwise empty or truncated.
  ParseStatus finish();
  void reset();

  ParseStatus status() const;
  const Response& response() const { return response_; }
  Response& response() { return response_; }

  ParseError error() const { return framer_.error(); }
  // e.g. "truncated response", "malformed status line".
  std::string_view error_message() const;

private:
  detail::Framer framer_;
  Response response_;
};

} // namespace cx::http
