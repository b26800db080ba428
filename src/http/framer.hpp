// Internal: the framing shared by the request and response parsers — start line, header
// lines, body by Content-Length (or to EOF) — with every size bounded before it is buffered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.hpp"

namespace cx::http::detail {

// RFC 9110 token: one or more of A-Z a-z 0-9 and !#$%&'*+-.^_`|~ (methods, header names).
bool is_token(std::string_view s);

struct FrameLimits {
  size_t max_start_line;   // bytes before the LF of the start line, CR and blank lines included
  size_t max_header_lines; // header lines, not counting the blank line that ends them
  size_t max_header_bytes; // all header lines with their line ends, the blank line included
  size_t max_body;
  bool body_until_eof; // without Content-Length, the body runs to EOF (responses only)
};

class Framer {
public:
  enum class Step : uint8_t { need_more, start_line, complete, error };
  struct Result {
    Step step;
    size_t consumed;
  };

  explicit Framer(FrameLimits limits) : limits_(limits) {}

  // Consume bytes from `data`. Returns Step::start_line once, right after the start line's LF;
  // the caller checks start_line() (and calls fail() if it is bad) and feeds the rest.
  // Header fields and body bytes are written to the caller's message.
  Result feed(std::string_view data, Headers& headers, std::string& body);
  // The peer closed the stream.
  Step finish();
  void fail(ParseError error);
  void reset();

  std::string_view start_line() const { return start_line_; }
  ParseError error() const { return error_; }
  Step state_step() const;
  // The start line and the header section are in (the body may still be to come).
  bool head_done() const {
    return state_ == State::body || state_ == State::body_to_eof || state_ == State::complete;
  }

private:
  enum class State : uint8_t { start_line, headers, body, body_to_eof, complete, failed };

  // Returns false after fail().
  bool on_header_line(std::string_view line, Headers& headers);
  void end_headers(const Headers& headers);

  FrameLimits limits_;
  State state_ = State::start_line;
  ParseError error_ = ParseError::none;
  std::string line_;        // the partial line so far, without its LF
  std::string start_line_;  // CR stripped
  size_t blank_prefix_ = 0; // bytes of blank lines skipped before the start line
  size_t header_lines_ = 0;
  size_t header_bytes_ = 0;
  uint64_t body_left_ = 0;
  bool transfer_encoding_ = false;
  bool content_length_conflict_ = false;
};

} // namespace cx::http::detail
