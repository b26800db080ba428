// JSON output: a compact builder over rapidjson::Writer, compact and canonical serialisation of
// a DOM. Output matches Perl JSON::XS where a peer could tell: UTF-8 passes through unescaped,
// '/' is not escaped, integers stay integers and doubles print as "%.15g".
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "json/json.hpp"

namespace cx::json {

// A double as Perl's JSON encoder prints it: "%.15g" ("1", "0.1", "1e+20", "-0"). Non-finite
// values, which JSON cannot carry, print as "null".
std::string format_double(double d);

// A fluent builder for compact JSON:
//   Writer w;
//   w.begin_object().member("exit", 0).member("stdout", out).end_object();
//   send(w.str());
// Strings and keys are written as given when they are valid UTF-8; invalid bytes are replaced
// with U+FFFD (cx::sanitize_utf8) so the output is always valid JSON. Misuse (a value where a
// key is due, unbalanced ends) is a programming error and trips RapidJSON's assertions.
class Writer {
public:
  Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  Writer& key(std::string_view k);

  Writer& string(std::string_view s);
  Writer& int64(int64_t v);
  Writer& uint64(uint64_t v);
  Writer& number(double v);
  Writer& boolean(bool v);
  Writer& null();
  Writer& string_array(const std::vector<std::string>& items);
  // Embeds an existing DOM value (doubles re-formatted as format_double does).
  Writer& value(const Value& v);
  // Embeds text that is already one serialised JSON value, e.g. a stored schema. Not checked.
  Writer& raw(std::string_view json);

  // key(k) followed by typed(v).
  template <typename T> Writer& member(std::string_view k, const T& v) {
    key(k);
    return typed(v);
  }

  // The writer that fits the type of `v`: bool, any integer, floating point, anything
  // convertible to std::string_view, a DOM Value, std::vector<std::string>, nullptr, or a
  // std::optional of one of these (null when empty).
  template <typename T> Writer& typed(const T& v) {
    if constexpr (std::is_same_v<T, std::nullptr_t>) {
      return null();
    } else if constexpr (is_optional<T>::value) {
      return v ? typed(*v) : null();
    } else if constexpr (std::is_same_v<T, bool>) {
      return boolean(v);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      return int64(static_cast<int64_t>(v));
    } else if constexpr (std::is_integral_v<T>) {
      return uint64(static_cast<uint64_t>(v));
    } else if constexpr (std::is_floating_point_v<T>) {
      return number(static_cast<double>(v));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      return string(std::string_view(v));
    } else if constexpr (std::is_base_of_v<Value, T>) {
      return value(v);
    } else {
      static_assert(std::is_same_v<T, std::vector<std::string>>, "no JSON writer for this type");
      return string_array(v);
    }
  }

  // True once exactly one complete top-level value has been written.
  bool complete() const { return writer_.IsComplete(); }
  // The text written so far.
  std::string str() const { return std::string(buffer_.GetString(), buffer_.GetSize()); }

private:
  template <typename T> struct is_optional : std::false_type {};
  template <typename T> struct is_optional<std::optional<T>> : std::true_type {};

  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

// Compact serialisation, members in document order.
std::string to_string(const Value& v);

// JSON::XS `canonical` output: compact, object keys sorted by byte order, integers as
// integers, doubles as format_double, strings escaped as JSON::XS does (\" \\ \b \f \n \r \t,
// other control characters as lowercase \u00xx, everything else as is). Schema versions are
// hashed over this text, so it must match a Perl agent byte for byte.
std::string canonical(const Value& v);

} // namespace cx::json
