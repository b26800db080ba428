// Status and Result<T>: how every fallible call in libctrlexec reports failure.
// Errors are values with a human-readable message; no exceptions cross the event loop.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace cx {

class [[nodiscard]] Status {
public:
  Status() = default; // success

  static Status error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  explicit operator bool() const { return ok(); }
  // The error text; empty for success.
  const std::string& message() const {
    static const std::string empty;
    return message_ ? *message_ : empty;
  }

private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

inline Status ok_status() {
  return Status();
}
inline Status error(std::string message) {
  return Status::error(std::move(message));
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
