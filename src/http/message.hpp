// The HTTP/1.x message types the parsers produce, and the parse results they report.
// Shared by the request and response parsers; nothing here touches a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace cx::http {

// Header fields by lower-cased name. The last duplicate wins, as in the original.
using Headers = std::map<std::string, std::string, std::less<>>;

// The value of header `lower_name` (which must already be lower case), or null.
const std::string* find_header(const Headers& headers, std::string_view lower_name);

// True if the comma-separated list `list` (e.g. a Connection value) holds `token`,
// compared ASCII case-insensitively after trimming spaces around each element.
bool has_token(std::string_view list, std::string_view token);

struct Request {
  // As sent. The agent routes on it case-sensitively; the API uppercases it first.
  std::string method;
  // As sent, query string included: neither the agent nor the API strips it.
  std::string path;
  // "HTTP/1.0", "HTTP/1.1" (any HTTP/1.x) or empty: the original ignores the version.
  std::string version;
  Headers headers;
  std::string body;

  const std::string* header(std::string_view lower_name) const {
    return find_header(headers, lower_name);
  }
  // The client sent a Connection header with the token keep-alive. Anything else,
  // including an HTTP/1.1 request with no Connection header, means close: we answer
  // HTTP/1.0, where persistence must be asked for.
  bool wants_keep_alive() const;
};

struct Response {
  std::string version; // "HTTP/1.0" or "HTTP/1.1"
  int status = 0;      // 100..999
  std::string reason;  // may be empty: a missing phrase is tolerated
  Headers headers;
  std::string body;

  const std::string* header(std::string_view lower_name) const {
    return find_header(headers, lower_name);
  }
};

enum class ParseStatus : uint8_t {
  need_more, // every fed byte was used; feed more, or call finish() at EOF
  complete,  // one message is ready; bytes after it were not consumed
  error,     // the stream is unusable; see error()
};

// What went wrong. The request side maps these to 400/413/431 (see RequestParser).
enum class ParseError : uint8_t {
  none,
  empty,               // EOF before any byte of a start line (blank lines aside)
  truncated,           // EOF inside a message
  bad_start_line,      // malformed request line or status line
  start_line_too_long, // longer than the start-line limit before its LF
  too_many_headers,    // more header lines than allowed
  headers_too_large,   // the header section exceeds its byte limit
  bad_content_length,  // not all digits, or conflicting duplicates
  transfer_encoding,   // any Transfer-Encoding header (no chunked support)
  body_too_large,      // Content-Length, or an EOF-delimited body, above the limit
};

// One call's outcome: `consumed` bytes of the chunk belong to the current message
// (always <= the chunk size; equal to it unless the message completed or failed).
struct Progress {
  ParseStatus status;
  size_t consumed;
};

} // namespace cx::http
