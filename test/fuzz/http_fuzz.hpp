// Invariants for the HTTP parsers, shared by the libFuzzer targets and by the corpus replay
// in the unit tests, so both run exactly the same checks on the same bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/parser.hpp"

namespace cx::fuzz {

namespace http_detail {

using cx::http::ParseStatus;
using cx::http::Progress;

// Chunk sizes come from the input itself (an FNV-1a hash seeds a xorshift generator), so
// the fuzzer explores splits by mutating the bytes and every replay is deterministic.
class ChunkSizes {
public:
  enum class Mode { whole, bytewise, seeded };
  ChunkSizes(Mode mode, std::string_view data) : mode_(mode) {
    state_ = 1469598103934665603ull;
    for (unsigned char c : data)
      state_ = (state_ ^ c) * 1099511628211ull;
    if (state_ == 0) state_ = 1;
  }
  size_t next(size_t left) {
    switch (mode_) {
    case Mode::whole:
      return left;
    case Mode::bytewise:
      return 1;
    case Mode::seeded:
      break;
    }
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    // Mostly small pieces, sometimes large ones, so both line splits and bulk bodies occur.
    size_t size = (state_ & 7) == 0 ? 1 + (state_ >> 8) % 4096 : 1 + (state_ >> 8) % 16;
    return std::min(size, left);
  }

private:
  Mode mode_;
  uint64_t state_;
};

inline std::string describe_headers(const cx::http::Headers& headers) {
  std::string out;
  for (const auto& [name, value] : headers)
    out.append(name).append("=").append(value) += ';';
  return out;
}

inline bool is_lower_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if ((c >= 'A' && c <= 'Z') || c == ':' || c == ' ' || c == '\n' || c == '\r') return false;
  return true;
}

inline bool is_visible(std::string_view s) {
  for (char c : s)
    if (c < '!' || c > '~') return false;
  return !s.empty();
}

// Checks common to requests and responses; returns a description of the first violation.
template <typename Message>
std::string check_framing(const Message& m, size_t max_header_lines, size_t max_body) {
  if (m.headers.size() > max_header_lines) return "more headers kept than lines allowed";
  for (const auto& [name, value] : m.headers) {
    if (!is_lower_name(name)) return "header name not lower-case token: " + name;
    if (value.find_first_of("\r\n") != std::string::npos) return "CR or LF in a header value";
  }
  if (m.body.size() > max_body) return "body above the limit";
  if (m.headers.count("transfer-encoding") != 0) return "completed with Transfer-Encoding";
  auto cl = m.headers.find("content-length");
  if (cl != m.headers.end()) {
    // Leading zeros are allowed on the wire; compare without them.
    std::string_view digits = cl->second;
    if (digits.empty()) return "empty Content-Length accepted";
    size_t first = digits.find_first_not_of('0');
    digits = first == std::string_view::npos ? std::string_view("0") : digits.substr(first);
    if (digits != std::to_string(m.body.size())) return "body size differs from Content-Length";
  }
  return "";
}

inline std::string check_request(const cx::http::Request& r, const cx::http::RequestLimits& l) {
  if (!is_visible(r.method) || !is_visible(r.path)) return "method or path not visible ASCII";
  if (!r.version.empty() && (r.version.size() != 8 || r.version.rfind("HTTP/1.", 0) != 0))
    return "version is not HTTP/1.x";
  if (r.header("content-length") == nullptr && !r.body.empty()) return "body without length";
  return check_framing(r, l.max_header_lines, l.max_body);
}

inline std::string check_response(const cx::http::Response& r, const cx::http::ResponseLimits& l) {
  if (r.status < 100 || r.status > 999) return "status code out of range";
  if (r.version.size() != 8 || r.version.rfind("HTTP/1.", 0) != 0) return "bad version";
  if (r.reason.find_first_of("\r\n") != std::string::npos) return "line end inside reason";
  return check_framing(r, l.max_header_lines, l.max_body);
}

inline std::string summary(const cx::http::Request& r) {
  return "request " + r.method + " " + r.path + " " + r.version + " [" +
         describe_headers(r.headers) + "] " + r.body;
}
inline std::string summary(const cx::http::Response& r) {
  return "response " + r.version + " " + std::to_string(r.status) + " " + r.reason + " [" +
         describe_headers(r.headers) + "] " + r.body;
}

inline bool error_status_ok(const cx::http::RequestParser& p) {
  int s = p.error_status();
  return (s == 400 || s == 413 || s == 431) && !p.error_message().empty();
}
inline bool error_status_ok(const cx::http::ResponseParser& p) {
  return !p.error_message().empty();
}

// Feed `data` in chunks, parsing message after message as a keep-alive peer would, then
// signal EOF. Appends one line per message or error to `events`; returns a violation or "".
template <typename Parser, typename Limits, typename Check>
std::string run_stream(std::string_view data, const Limits& limits, size_t max_message_bytes,
                       ChunkSizes sizes, Check check, std::vector<std::string>& events) {
  Parser parser(limits);
  size_t message_bytes = 0;
  size_t off = 0;
  while (off < data.size()) {
    size_t len = sizes.next(data.size() - off);
    std::string_view chunk = data.substr(off, len);
    off += len;
    while (true) {
      Progress p = parser.feed(chunk);
      if (p.consumed > chunk.size()) return "consumed more than fed";
      if (parser.status() != p.status) return "status() disagrees with feed()";
      message_bytes += p.consumed;
      if (message_bytes > max_message_bytes) return "message larger than all limits allow";
      if (p.status == ParseStatus::need_more) {
        if (p.consumed != chunk.size()) return "need_more without consuming everything";
        break;
      }
      if (p.status == ParseStatus::error) {
        if (!error_status_ok(parser)) return "error without a valid status or message";
        events.push_back("error " + std::string(parser.error_message()));
        return "";
      }
      if (message_bytes == 0) return "completed an empty message";
      std::string broken = check(parser);
      if (!broken.empty()) return broken;
      events.push_back(summary(parser.request_or_response()));
      parser.reset();
      message_bytes = 0;
      chunk.remove_prefix(p.consumed);
      if (chunk.empty()) break;
    }
  }
  ParseStatus end = parser.finish();
  if (end == ParseStatus::need_more) return "finish() left the parser waiting";
  if (end == ParseStatus::complete) {
    std::string broken = check(parser);
    if (!broken.empty()) return broken;
    events.push_back("eof " + summary(parser.request_or_response()));
  } else {
    if (!error_status_ok(parser)) return "EOF error without a valid status or message";
    events.push_back("eof error " + std::string(parser.error_message()));
  }
  return "";
}

// Give run_stream one name for the parsed message of either parser.
struct RequestSide : cx::http::RequestParser {
  using cx::http::RequestParser::RequestParser;
  const cx::http::Request& request_or_response() const { return request(); }
};
struct ResponseSide : cx::http::ResponseParser {
  using cx::http::ResponseParser::ResponseParser;
  const cx::http::Response& request_or_response() const { return response(); }
};

// Run every chunking under `limits` and require the same events from each.
template <typename Side, typename Limits, typename Check>
std::string check_all_chunkings(std::string_view data, const Limits& limits,
                                size_t max_message_bytes, Check check) {
  using Mode = ChunkSizes::Mode;
  std::vector<std::string> reference;
  std::string broken = run_stream<Side>(data, limits, max_message_bytes,
                                        ChunkSizes(Mode::whole, data), check, reference);
  if (!broken.empty()) return "whole: " + broken;
  for (Mode mode : {Mode::seeded, Mode::bytewise}) {
    if (mode == Mode::bytewise && data.size() > 16384) continue; // keep each run fast
    std::vector<std::string> events;
    broken =
        run_stream<Side>(data, limits, max_message_bytes, ChunkSizes(mode, data), check, events);
    if (!broken.empty()) return (mode == Mode::seeded ? "seeded: " : "bytewise: ") + broken;
    if (events != reference) return "chunking changed the result";
  }
  return "";
}

} // namespace http_detail

// The request side: default limits and tiny ones, so that small inputs reach every limit.
inline std::string check_http_request_stream(const uint8_t* data, size_t size) {
  using namespace http_detail;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  cx::http::RequestLimits tiny;
  tiny.max_header_lines = 3;
  tiny.max_body = 16;
  tiny.max_request_line = 40;
  tiny.max_header_bytes = 128;
  for (const cx::http::RequestLimits& limits : {cx::http::RequestLimits{}, tiny}) {
    size_t max_bytes = limits.max_request_line + 1 + limits.max_header_bytes + limits.max_body;
    auto check = [&limits](const RequestSide& p) { return check_request(p.request(), limits); };
    std::string broken = check_all_chunkings<RequestSide>(bytes, limits, max_bytes, check);
    if (!broken.empty()) return broken;
  }
  return "";
}

// The response side, likewise; the EOF-delimited body makes the last message run to the end.
inline std::string check_http_response_stream(const uint8_t* data, size_t size) {
  using namespace http_detail;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  cx::http::ResponseLimits tiny;
  tiny.max_header_lines = 3;
  tiny.max_body = 16;
  tiny.max_status_line = 40;
  tiny.max_header_bytes = 128;
  for (const cx::http::ResponseLimits& limits : {cx::http::ResponseLimits{}, tiny}) {
    size_t max_bytes = limits.max_status_line + 1 + limits.max_header_bytes + limits.max_body;
    auto check = [&limits](const ResponseSide& p) { return check_response(p.response(), limits); };
    std::string broken = check_all_chunkings<ResponseSide>(bytes, limits, max_bytes, check);
    if (!broken.empty()) return broken;
  }
  return "";
}

} // namespace cx::fuzz
