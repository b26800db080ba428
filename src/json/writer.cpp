// JSON output; see writer.hpp.
#include "json/writer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/strings.hpp"
#include "json/forward.hpp"

namespace cx::json {

namespace {

using RawWriter = rapidjson::Writer<rapidjson::StringBuffer>;
using rapidjson::SizeType;

// Strings reach RapidJSON's writer only as valid UTF-8; the copy is made only when needed.
template <typename F> bool with_valid_utf8(std::string_view s, F&& write) {
  if (is_valid_utf8(s)) return write(s);
  std::string fixed = sanitize_utf8(s);
  return write(std::string_view(fixed));
}

// Replays a DOM into the writer, formatting doubles the Perl way.
class Replayer : public detail::ForwardingHandler<RawWriter> {
public:
  explicit Replayer(RawWriter& w) : ForwardingHandler(w) {}
  bool Double(double d) {
    std::string s = format_double(d);
    return target_.RawValue(s.data(), s.size(), rapidjson::kNumberType);
  }
  bool RawNumber(const char* s, SizeType n, bool) {
    return target_.RawValue(s, n, rapidjson::kNumberType);
  }
  bool String(const char* s, SizeType n, bool) {
    return with_valid_utf8({s, n}, [&](std::string_view v) {
      return target_.String(v.data(), static_cast<SizeType>(v.size()));
    });
  }
  bool Key(const char* s, SizeType n, bool) {
    return with_valid_utf8({s, n}, [&](std::string_view v) {
      return target_.Key(v.data(), static_cast<SizeType>(v.size()));
    });
  }
};

void canonical_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

void canonical_value(std::string& out, const Value& v) {
  switch (v.GetType()) {
  case rapidjson::kNullType:
    out += "null";
    return;
  case rapidjson::kFalseType:
    out += "false";
    return;
  case rapidjson::kTrueType:
    out += "true";
    return;
  case rapidjson::kNumberType:
    if (v.IsUint64())
      out += std::to_string(v.GetUint64());
    else if (v.IsInt64())
      out += std::to_string(v.GetInt64());
    else
      out += format_double(v.GetDouble());
    return;
  case rapidjson::kStringType: {
    std::string_view s(v.GetString(), v.GetStringLength());
    canonical_string(out, is_valid_utf8(s) ? std::string(s) : sanitize_utf8(s));
    return;
  }
  case rapidjson::kArrayType: {
    out += '[';
    bool first = true;
    for (const auto& e : v.GetArray()) {
      if (!first) out += ',';
      first = false;
      canonical_value(out, e);
    }
    out += ']';
    return;
  }
  case rapidjson::kObjectType: {
    // Sort by key bytes; among equal keys (possible only in a DOM built by hand) the last one
    // wins, as in a Perl hash.
    std::vector<const Value::Member*> members;
    members.reserve(v.MemberCount());
    for (const auto& m : v.GetObject())
      members.push_back(&m);
    auto key = [](const Value::Member* m) {
      return std::string_view(m->name.GetString(), m->name.GetStringLength());
    };
    std::stable_sort(members.begin(), members.end(),
                     [&](auto* a, auto* b) { return key(a) < key(b); });
    out += '{';
    bool first = true;
    for (size_t i = 0; i < members.size(); ++i) {
      if (i + 1 < members.size() && key(members[i]) == key(members[i + 1])) continue;
      if (!first) out += ',';
      first = false;
      canonical_value(out, members[i]->name);
      out += ':';
      canonical_value(out, members[i]->value);
    }
    out += '}';
    return;
  }
  }
}

} // namespace

std::string format_double(double d) {
  if (!std::isfinite(d)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", d);
  return buf;
}

Writer::Writer() : writer_(buffer_) {}

Writer& Writer::begin_object() {
  writer_.StartObject();
  return *this;
}
Writer& Writer::end_object() {
  writer_.EndObject();
  return *this;
}
Writer& Writer::begin_array() {
  writer_.StartArray();
  return *this;
}
Writer& Writer::end_array() {
  writer_.EndArray();
  return *this;
}

Writer& Writer::key(std::string_view k) {
  Replayer(writer_).Key(k.data(), static_cast<SizeType>(k.size()), true);
  return *this;
}

Writer& Writer::string(std::string_view s) {
  Replayer(writer_).String(s.data(), static_cast<SizeType>(s.size()), true);
  return *this;
}

Writer& Writer::int64(int64_t v) {
  writer_.Int64(v);
  return *this;
}
Writer& Writer::uint64(uint64_t v) {
  writer_.Uint64(v);
  return *this;
}
Writer& Writer::number(double v) {
  Replayer(writer_).Double(v);
  return *this;
}
Writer& Writer::boolean(bool v) {
  writer_.Bool(v);
  return *this;
}
Writer& Writer::null() {
  writer_.Null();
  return *this;
}

Writer& Writer::string_array(const std::vector<std::string>& items) {
  begin_array();
  for (const auto& s : items)
    string(s);
  return end_array();
}

Writer& Writer::value(const Value& v) {
  Replayer r(writer_);
  v.Accept(r);
  return *this;
}

Writer& Writer::raw(std::string_view json) {
  writer_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
  return *this;
}

std::string to_string(const Value& v) {
  Writer w;
  w.value(v);
  return w.str();
}

std::string canonical(const Value& v) {
  std::string out;
  canonical_value(out, v);
  return out;
}

} // namespace cx::json
