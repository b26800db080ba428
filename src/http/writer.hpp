// The exact bytes we put on the wire: responses in the original's framing (agent-and-wire
// §3.3.1, dispatcher-and-api §6.3) and the requests our clients send.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cx::http {

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// 200 OK, 202 Accepted, 400 Bad Request, 403 Forbidden, 404 Not Found, 409 Conflict,
// 413 Content Too Large, 431 Request Header Fields Too Large, 500 Internal Server Error,
// 503 Service Unavailable; any other code "Unknown".
std::string_view reason_phrase(int code);

// "HTTP/1.0 <code> <phrase>\r\nContent-Type: application/json\r\nContent-Length: <n>\r\n"
// then each extra header (e.g. Connection: keep-alive), "\r\n", and the body. Only the
// metrics scrape answers with another Content-Type.
// `code` must have three digits; names and values must not contain CR, LF or NUL.
std::string format_response(int code, std::string_view body,
                            const std::vector<HeaderField>& extra_headers = {},
                            std::string_view content_type = "application/json");

// The head of a streamed response (ours: live run output), whose body runs until the
// connection closes: "HTTP/1.0 <code> <phrase>\r\nContent-Type: <type>\r\nConnection: close\r\n"
// "Cache-Control: no-cache\r\n", each extra header, then "\r\n". No Content-Length.
std::string format_stream_head(int code, std::string_view content_type,
                               const std::vector<HeaderField>& extra_headers = {});

// Our HTTP/1.1 client request, one per connection:
// "<method> <path> HTTP/1.1\r\nHost: <host>\r\nConnection: close\r\n"
// "Content-Type: <type>\r\nContent-Length: <n>\r\n\r\n<body>".
// A GET or HEAD with an empty body carries neither Content-Type nor Content-Length.
std::string format_request(std::string_view method, std::string_view path,
                           std::string_view host_header, std::string_view body,
                           std::string_view content_type = "application/json");

// The bare HTTP/1.0 request the agent sends by hand for pairing (agent-and-wire §5.2) and
// self-ping: "<method> <path> HTTP/1.0\r\nContent-Type: <type>\r\nContent-Length: <n>\r\n\r\n"
// then the body. No Host header, as in the original.
std::string format_http10_request(std::string_view method, std::string_view path,
                                  std::string_view body,
                                  std::string_view content_type = "application/json");

} // namespace cx::http
