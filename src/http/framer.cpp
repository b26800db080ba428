// Start line, header lines and body framing shared by both parsers; see framer.hpp.
#include "http/framer.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace cx::http::detail {

Framer::Step Framer::state_step() const {
  switch (state_) {
  case State::complete:
    return Step::complete;
  case State::failed:
    return Step::error;
  default:
    return Step::need_more;
  }
}

void Framer::fail(ParseError error) {
  // Keep the first cause: later calls only see a stream that is already broken.
  if (state_ == State::failed) return;
  state_ = State::failed;
  error_ = error;
}

void Framer::reset() {
  state_ = State::start_line;
  error_ = ParseError::none;
  line_.clear();
  start_line_.clear();
  blank_prefix_ = 0;
  header_lines_ = 0;
  header_bytes_ = 0;
  body_left_ = 0;
  transfer_encoding_ = false;
  content_length_conflict_ = false;
}

Framer::Result Framer::feed(std::string_view data, Headers& headers, std::string& body) {
  size_t pos = 0;
  while (true) {
    switch (state_) {
    case State::complete:
      return {Step::complete, pos};
    case State::failed:
      return {Step::error, pos};

    case State::body: {
      size_t take = static_cast<size_t>(std::min<uint64_t>(body_left_, data.size() - pos));
      body.append(data.data() + pos, take);
      pos += take;
      body_left_ -= take;
      if (body_left_ == 0) {
        state_ = State::complete;
        continue;
      }
      return {Step::need_more, pos};
    }

    case State::body_to_eof: {
      size_t take = data.size() - pos;
      if (take > limits_.max_body - body.size()) {
        fail(ParseError::body_too_large);
        return {Step::error, pos};
      }
      body.append(data.data() + pos, take);
      return {Step::need_more, data.size()};
    }

    case State::start_line:
    case State::headers: {
      if (pos == data.size()) return {Step::need_more, pos};
      std::string_view rest = data.substr(pos);
      size_t lf = rest.find('\n');
      size_t piece = lf == std::string_view::npos ? rest.size() : lf;
      // Check the limit before buffering, so a peer that never sends LF cannot grow line_
      // past it.
      if (state_ == State::start_line) {
        if (blank_prefix_ + line_.size() + piece > limits_.max_start_line) {
          fail(ParseError::start_line_too_long);
          return {Step::error, pos};
        }
      } else {
        size_t with_lf = piece + (lf == std::string_view::npos ? 0 : 1);
        if (header_bytes_ + line_.size() + with_lf > limits_.max_header_bytes) {
          fail(ParseError::headers_too_large);
          return {Step::error, pos};
        }
      }
      line_.append(rest.data(), piece);
      pos += piece;
      if (lf == std::string_view::npos) return {Step::need_more, pos};
      pos += 1; // the LF

      size_t line_bytes = line_.size() + 1;
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      // RFC 9112 §2.2: a bare CR inside a line is replaced with a space, so none can reach a
      // header value, a reason phrase or a log line (found by the response fuzzer).
      std::replace(line_.begin(), line_.end(), '\r', ' ');
      std::string_view line = line_;

      if (state_ == State::start_line) {
        if (line.empty()) {
          // RFC 9112 §2.2: ignore blank lines before a start line. Clients may send a stray
          // CRLF after a body on a kept-alive connection. They still count toward the limit.
          blank_prefix_ += line_bytes;
          line_.clear();
          continue;
        }
        start_line_.assign(line);
        line_.clear();
        state_ = State::headers;
        return {Step::start_line, pos};
      }

      header_bytes_ += line_bytes;
      if (line.empty()) {
        line_.clear();
        end_headers(headers);
        continue;
      }
      bool ok = on_header_line(line, headers);
      line_.clear();
      if (!ok) return {Step::error, pos};
      continue;
    }
    }
  }
}

bool Framer::on_header_line(std::string_view line, Headers& headers) {
  if (++header_lines_ > limits_.max_header_lines) {
    fail(ParseError::too_many_headers);
    return false;
  }
  // A line that is not "Name: value" (no colon, an empty name, a name with spaces, an
  // obsolete folded continuation) is ignored but counted, as the original does.
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return true;
  std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return true;

  std::string key = to_lower(name);
  std::string_view value = trim(line.substr(colon + 1));
  if (key == "transfer-encoding") transfer_encoding_ = true;
  if (key == "content-length") {
    // "Last duplicate wins" would let two framings disagree; a conflicting pair is
    // rejected instead (RFC 9112 §6.3), a repeated identical one is harmless.
    const std::string* previous = find_header(headers, key);
    if (previous != nullptr && *previous != value) content_length_conflict_ = true;
  }
  headers.insert_or_assign(std::move(key), std::string(value));
  return true;
}

void Framer::end_headers(const Headers& headers) {
  // The original never supported chunked coding. Rejecting any Transfer-Encoding, rather
  // than ignoring it and framing by Content-Length, closes the request-smuggling hole where
  // a proxy in front and this parser would disagree on where the body ends.
  if (transfer_encoding_) return fail(ParseError::transfer_encoding);
  if (content_length_conflict_) return fail(ParseError::bad_content_length);

  const std::string* length = find_header(headers, "content-length");
  if (length == nullptr) {
    state_ = limits_.body_until_eof ? State::body_to_eof : State::complete;
    return;
  }
  if (!is_digits(*length)) return fail(ParseError::bad_content_length);
  // All digits but beyond 64 bits is certainly above the limit: 413, not 400.
  std::optional<uint64_t> n = parse_uint(*length);
  if (!n || *n > limits_.max_body) return fail(ParseError::body_too_large);
  body_left_ = *n;
  state_ = body_left_ == 0 ? State::complete : State::body;
}

Framer::Step Framer::finish() {
  switch (state_) {
  case State::complete:
    return Step::complete;
  case State::failed:
    return Step::error;
  case State::body_to_eof:
    state_ = State::complete;
    return Step::complete;
  case State::start_line:
    // Nothing but blank lines (or a lone CR) before EOF: the original's "empty request".
    if (line_.find_first_not_of('\r') == std::string::npos) {
      fail(ParseError::empty);
      return Step::error;
    }
    fail(ParseError::truncated);
    return Step::error;
  default:
    fail(ParseError::truncated);
    return Step::error;
  }
}

} // namespace cx::http::detail
