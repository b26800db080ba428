// Status and Result<T>: how every fallible call in libctrlexec reports failure.
// Errors are values: a kind that says what happened, set where it happens, and a human-readable
// message. Callers decide by the kind, never by searching the message (as libuv's errno codes
// and mbedTLS's error codes are meant to be used). No exceptions cross the event loop.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cx {

// What went wrong. The kinds that concern a network exchange are set by event/ (libuv errno),
// tls/ (the handshake) and http/ (deadlines, the peer's bytes); engine/result.hpp turns them
// into the original's texts and per-host states.
enum class ErrorKind : uint8_t {
  none,         // success
  other,        // no more specific kind (the default of error(message))
  dns,          // a host name did not resolve
  refused,      // the connection was refused (nothing listens on the port)
  unreachable,  // no route to the host or its network
  timeout,      // connecting (TCP and TLS) or the whole exchange took too long
  read_timeout, // connected, but nothing arrived within the read (inactivity) timeout
  closed,       // the peer closed the connection before a complete response
  tls,          // the TLS handshake failed (certificate, trust, protocol)
  tls_closed,   // the peer closed (or reset) the connection during the TLS handshake
  io,           // another operating-system error on a connection or file
  protocol,     // the peer's bytes broke the protocol (a malformed HTTP response)
  http_status,  // the peer answered with an HTTP error status (other than a refusal)
  denied,       // the peer refused us (HTTP 403, an agent's "not authorised"), or the OS refused
                // us a directory (EACCES)
  config,       // a configuration or credential file is unusable
};

// Every kind, for tables that must cover them all.
inline constexpr ErrorKind kErrorKinds[] = {
    ErrorKind::none,        ErrorKind::other,      ErrorKind::dns,          ErrorKind::refused,
    ErrorKind::unreachable, ErrorKind::timeout,    ErrorKind::read_timeout, ErrorKind::closed,
    ErrorKind::tls,         ErrorKind::tls_closed, ErrorKind::io,           ErrorKind::protocol,
    ErrorKind::http_status, ErrorKind::denied,     ErrorKind::config};

// The kind's name as written above ("read_timeout"), for logs of tests and debugging.
constexpr std::string_view kind_name(ErrorKind k) {
  // Indexed by ErrorKind.
  constexpr std::string_view names[] = {
      "none", "other",      "dns", "refused",  "unreachable", "timeout", "read_timeout", "closed",
      "tls",  "tls_closed", "io",  "protocol", "http_status", "denied",  "config"};
  static_assert(std::size(names) == std::size(kErrorKinds));
  return names[static_cast<size_t>(k)];
}

class [[nodiscard]] Status {
public:
  Status() = default; // success

  static Status error(std::string message) { return Status(ErrorKind::other, std::move(message)); }
  // An error of a given kind; `kind` must not be none (that is a bug).
  static Status error(ErrorKind kind, std::string message) {
    if (kind == ErrorKind::none) std::abort();
    return Status(kind, std::move(message));
  }

  bool ok() const { return !message_.has_value(); }
  explicit operator bool() const { return ok(); }
  // What happened; none for success.
  ErrorKind kind() const { return message_ ? kind_ : ErrorKind::none; }
  // The error text; empty for success.
  const std::string& message() const {
    static const std::string empty;
    return message_ ? *message_ : empty;
  }

private:
  Status(ErrorKind kind, std::string message) : message_(std::move(message)), kind_(kind) {}
  std::optional<std::string> message_;
  ErrorKind kind_ = ErrorKind::none;
};

inline Status ok_status() {
  return Status();
}
inline Status error(std::string message) {
  return Status::error(std::move(message));
}
inline Status error(ErrorKind kind, std::string message) {
  return Status::error(kind, std::move(message));
}

template <typename T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {} // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).ok()) std::abort(); // a Result from a success Status is a bug
  }

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  Status status() const { return ok() ? Status() : std::get<1>(v_); }
  ErrorKind kind() const { return ok() ? ErrorKind::none : std::get<1>(v_).kind(); }
  const std::string& message() const {
    static const std::string empty;
    return ok() ? empty : std::get<1>(v_).message();
  }

private:
  std::variant<T, Status> v_;
};

} // namespace cx

// Propagate a failed Status from the enclosing function.
#define CX_TRY(expr)                                                                               \
  do {                                                                                             \
    ::cx::Status cx_try_status_ = (expr);                                                          \
    if (!cx_try_status_.ok()) return cx_try_status_;                                               \
  } while (0)

#define CX_CONCAT_INNER(a, b) a##b
#define CX_CONCAT(a, b) CX_CONCAT_INNER(a, b)
// Evaluate a Result<T>; on failure return its Status, otherwise move the value into `lhs`.
#define CX_ASSIGN_OR_RETURN(lhs, expr)                                                             \
  CX_ASSIGN_OR_RETURN_IMPL(CX_CONCAT(cx_res_, __LINE__), lhs, expr)
#define CX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                                                   \
  auto tmp = (expr);                                                                               \
  if (!tmp.ok()) return tmp.status();                                                              \
  lhs = std::move(tmp).value()

// Invariants that cannot fail unless the program is wrong: abort loudly.
#define CX_CHECK(cond)                                                                             \
  do {                                                                                             \
    if (!(cond)) ::cx::check_failed(#cond, __FILE__, __LINE__);                                    \
  } while (0)

namespace cx {
[[noreturn]] void check_failed(const char* expr, const char* file, int line);
}
