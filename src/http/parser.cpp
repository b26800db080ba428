// Request-line and status-line rules on top of the shared framing; see parser.hpp.
#include "http/parser.hpp"

#include "base/strings.hpp"

namespace cx::http {

namespace detail {

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

} // namespace detail

namespace {

// HTTP/1.0 and HTTP/1.1 (any HTTP/1.<digit>, as both sides only care about the major).
bool is_http1_version(std::string_view v) {
  return v.size() == 8 && v.substr(0, 7) == "HTTP/1." && v[7] >= '0' && v[7] <= '9';
}

// Visible ASCII only: a path never needs spaces, controls or raw 8-bit bytes, and refusing
// them keeps junk out of routing and of log lines.
bool is_request_target(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '!' || c > '~') return false;
  return true;
}

// "METHOD PATH [VERSION]", split on whitespace. The original ignores the version, so it may
// be missing. Unlike the original, a lone token (which it routed as "<m> /" in the API) and
// extra tokens are refused: no client of ours sends either, and guessing invites surprises.
bool parse_request_line(std::string_view line, Request& r) {
  std::vector<std::string> parts = split_ws(line);
  if (parts.size() < 2 || parts.size() > 3) return false;
  if (!detail::is_token(parts[0]) || !is_request_target(parts[1])) return false;
  if (parts.size() == 3 && !is_http1_version(parts[2])) return false;
  r.method = std::move(parts[0]);
  r.path = std::move(parts[1]);
  if (parts.size() == 3) r.version = std::move(parts[2]);
  return true;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// "HTTP/1.x <3 digits>[ <reason phrase>]": the phrase may be missing or contain spaces.
bool parse_status_line(std::string_view line, Response& r) {
  if (line.size() < 12 || !is_http1_version(line.substr(0, 8)) || !is_blank(line[8])) return false;
  std::string_view rest = line.substr(9);
  while (!rest.empty() && is_blank(rest.front()))
    rest.remove_prefix(1);
  if (rest.size() < 3 || !is_digits(rest.substr(0, 3))) return false;
  if (rest.size() > 3 && !is_blank(rest[3])) return false;
  int code = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  if (code < 100) return false;
  r.version.assign(line.substr(0, 8));
  r.status = code;
  r.reason.assign(trim(rest.substr(3)));
  return true;
}

ParseStatus to_status(detail::Framer::Step step) {
  switch (step) {
  case detail::Framer::Step::complete:
    return ParseStatus::complete;
  case detail::Framer::Step::error:
    return ParseStatus::error;
  default:
    return ParseStatus::need_more;
  }
}

// Drive the framer over `data`, checking the start line with `parse_start` when it arrives.
template <typename Message, typename ParseStart>
Progress drive(detail::Framer& framer, Message& message, std::string_view data,
               ParseStart parse_start) {
  size_t used = 0;
  while (true) {
    detail::Framer::Result r = framer.feed(data.substr(used), message.headers, message.body);
    used += r.consumed;
    if (r.step != detail::Framer::Step::start_line) return {to_status(r.step), used};
    if (!parse_start(framer.start_line(), message)) framer.fail(ParseError::bad_start_line);
  }
}

} // namespace

RequestParser::RequestParser(RequestLimits limits)
    : framer_({limits.max_request_line, limits.max_header_lines, limits.max_header_bytes,
               limits.max_body, /*body_until_eof=*/false}) {}

Progress RequestParser::feed(std::string_view data) {
  return drive(framer_, request_, data, parse_request_line);
}

ParseStatus RequestParser::finish() {
  return to_status(framer_.finish());
}

void RequestParser::reset() {
  framer_.reset();
  request_ = Request();
}

ParseStatus RequestParser::status() const {
  return to_status(framer_.state_step());
}

int RequestParser::error_status() const {
  switch (framer_.error()) {
  case ParseError::none:
    return 0;
  case ParseError::too_many_headers:
  case ParseError::headers_too_large:
    return 431;
  case ParseError::body_too_large:
    return 413;
  default:
    return 400;
  }
}

std::string_view RequestParser::error_message() const {
  switch (framer_.error()) {
  case ParseError::none:
    return "";
  case ParseError::empty:
    return "empty request";
  case ParseError::truncated:
    return "truncated request";
  case ParseError::bad_start_line:
    return "malformed request line";
  case ParseError::start_line_too_long:
    return "request line too long";
  case ParseError::too_many_headers:
    return "too many headers";
  case ParseError::headers_too_large:
    return "header section too large";
  case ParseError::bad_content_length:
    return "invalid content-length";
  case ParseError::transfer_encoding:
    return "transfer-encoding not supported";
  case ParseError::body_too_large:
    return "request too large";
  }
  return "bad request";
}

ResponseParser::ResponseParser(ResponseLimits limits)
    : framer_({limits.max_status_line, limits.max_header_lines, limits.max_header_bytes,
               limits.max_body, /*body_until_eof=*/true}) {}

Progress ResponseParser::feed(std::string_view data) {
  return drive(framer_, response_, data, parse_status_line);
}

ParseStatus ResponseParser::finish() {
  return to_status(framer_.finish());
}

void ResponseParser::reset() {
  framer_.reset();
  response_ = Response();
}

ParseStatus ResponseParser::status() const {
  return to_status(framer_.state_step());
}

std::string_view ResponseParser::error_message() const {
  switch (framer_.error()) {
  case ParseError::none:
    return "";
  case ParseError::empty:
    return "empty response";
  case ParseError::truncated:
    return "truncated response";
  case ParseError::bad_start_line:
    return "malformed status line";
  case ParseError::start_line_too_long:
    return "status line too long";
  case ParseError::too_many_headers:
    return "too many headers";
  case ParseError::headers_too_large:
    return "header section too large";
  case ParseError::bad_content_length:
    return "invalid content-length";
  case ParseError::transfer_encoding:
    return "transfer-encoding not supported";
  case ParseError::body_too_large:
    return "response too large";
  }
  return "bad response";
}

} // namespace cx::http
