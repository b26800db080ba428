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
bool parse_start_line(std::string_view line, Request& r) {
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
bool parse_start_line(std::string_view line, Response& r) {
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

constexpr detail::ErrorWords kRequestWords{"empty request",          "truncated request",
                                           "malformed request line", "request line too long",
                                           "request too large",      "bad request"};
constexpr detail::ErrorWords kResponseWords{"empty response",        "truncated response",
                                            "malformed status line", "status line too long",
                                            "response too large",    "bad response"};

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

} // namespace

namespace detail {

template <typename Message> Progress MessageParser<Message>::feed(std::string_view data) {
  size_t used = 0;
  while (true) {
    Framer::Result r = framer_.feed(data.substr(used), message_.headers, message_.body);
    used += r.consumed;
    if (r.step != Framer::Step::start_line) return {to_status(r.step), used};
    if (!parse_start_line(framer_.start_line(), message_)) framer_.fail(ParseError::bad_start_line);
  }
}

template <typename Message> ParseStatus MessageParser<Message>::finish() {
  return to_status(framer_.finish());
}

template <typename Message> void MessageParser<Message>::reset() {
  framer_.reset();
  message_ = Message();
}

template <typename Message> ParseStatus MessageParser<Message>::status() const {
  return to_status(framer_.state_step());
}

template <typename Message> std::string_view MessageParser<Message>::error_message() const {
  const ErrorWords& words = *words_;
  switch (framer_.error()) {
  case ParseError::none:
    return "";
  case ParseError::empty:
    return words.empty;
  case ParseError::truncated:
    return words.truncated;
  case ParseError::bad_start_line:
    return words.bad_start_line;
  case ParseError::start_line_too_long:
    return words.start_line_too_long;
  case ParseError::too_many_headers:
    return "too many headers";
  case ParseError::headers_too_large:
    return "header section too large";
  case ParseError::bad_content_length:
    return "invalid content-length";
  case ParseError::transfer_encoding:
    return "transfer-encoding not supported";
  case ParseError::body_too_large:
    return words.body_too_large;
  }
  return words.fallback;
}

template class MessageParser<Request>;
template class MessageParser<Response>;

} // namespace detail

RequestParser::RequestParser(RequestLimits limits)
    : MessageParser({limits.max_request_line, limits.max_header_lines, limits.max_header_bytes,
                     limits.max_body, /*body_until_eof=*/false},
                    kRequestWords) {}

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

ResponseParser::ResponseParser(ResponseLimits limits)
    : MessageParser({limits.max_status_line, limits.max_header_lines, limits.max_header_bytes,
                     limits.max_body, /*body_until_eof=*/true},
                    kResponseWords) {}

} // namespace cx::http
