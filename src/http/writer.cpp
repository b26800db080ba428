// Response and request serialisation; see writer.hpp.
#include "http/writer.hpp"

#include "base/status.hpp"

namespace cx::http {

namespace {

// Every caller passes constants or validated names; a CR or LF here would let a value
// split the message, so it is a bug, not input to handle.
bool is_header_safe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Method and path go on the request line, where a space would shift the fields.
bool is_request_line_safe(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c <= ' ' || c == '\x7f') return false;
  return true;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  CX_CHECK(!name.empty() && is_header_safe(name) && is_header_safe(value));
  out.append(name).append(": ").append(value).append("\r\n");
}

void append_request_line(std::string& out, std::string_view method, std::string_view path,
                         std::string_view version) {
  CX_CHECK(is_request_line_safe(method) && is_request_line_safe(path));
  out.append(method).append(" ").append(path).append(" ").append(version).append("\r\n");
}

} // namespace

std::string_view reason_phrase(int code) {
  switch (code) {
  case 200:
    return "OK";
  case 202:
    return "Accepted";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 409:
    return "Conflict";
  case 413:
    return "Content Too Large";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return "Unknown";
  }
}

std::string format_response(int code, std::string_view body,
                            const std::vector<HeaderField>& extra_headers,
                            std::string_view content_type) {
  CX_CHECK(code >= 100 && code <= 999);
  std::string length = std::to_string(body.size());
  std::string out;
  out.reserve(96 + body.size());
  out.append("HTTP/1.0 ").append(std::to_string(code)).append(" ");
  out.append(reason_phrase(code)).append("\r\n");
  append_field(out, "Content-Type", content_type);
  append_field(out, "Content-Length", length);
  for (const HeaderField& h : extra_headers)
    append_field(out, h.name, h.value);
  out.append("\r\n").append(body);
  return out;
}

std::string format_stream_head(int code, std::string_view content_type,
                               const std::vector<HeaderField>& extra_headers) {
  CX_CHECK(code >= 100 && code <= 999);
  std::string out;
  out.append("HTTP/1.0 ").append(std::to_string(code)).append(" ");
  out.append(reason_phrase(code)).append("\r\n");
  append_field(out, "Content-Type", content_type);
  append_field(out, "Connection", "close");
  append_field(out, "Cache-Control", "no-cache");
  for (const HeaderField& h : extra_headers)
    append_field(out, h.name, h.value);
  out.append("\r\n");
  return out;
}

std::string format_request(std::string_view method, std::string_view path,
                           std::string_view host_header, std::string_view body,
                           std::string_view content_type) {
  std::string out;
  out.reserve(128 + host_header.size() + path.size() + body.size());
  append_request_line(out, method, path, "HTTP/1.1");
  append_field(out, "Host", host_header);
  // One request per connection, as the original's agents and API expect.
  append_field(out, "Connection", "close");
  bool bodiless = body.empty() && (method == "GET" || method == "HEAD");
  if (!bodiless) {
    append_field(out, "Content-Type", content_type);
    append_field(out, "Content-Length", std::to_string(body.size()));
  }
  out.append("\r\n").append(body);
  return out;
}

std::string format_http10_request(std::string_view method, std::string_view path,
                                  std::string_view body, std::string_view content_type) {
  std::string out;
  out.reserve(96 + path.size() + body.size());
  append_request_line(out, method, path, "HTTP/1.0");
  append_field(out, "Content-Type", content_type);
  append_field(out, "Content-Length", std::to_string(body.size()));
  out.append("\r\n").append(body);
  return out;
}

} // namespace cx::http
