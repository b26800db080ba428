// JSON parsing and typed reads; see json.hpp.
#include "json/json.hpp"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "json/forward.hpp"
#include "json/writer.hpp"

namespace cx::json {

namespace {

// Whether a decoded string holds a UTF-16 surrogate code point (U+D800-U+DFFF), which is not
// valid UTF-8. The input bytes are validated as UTF-8 by the reader, so one can only come from
// an escape: RapidJSON 1.1 pairs a high surrogate with its low one, but decodes a lone low
// surrogate ("\uDDDD") into these three bytes instead of refusing it.
bool has_surrogate(const char* s, size_t n) {
  for (size_t i = 0; i + 1 < n; ++i)
    if (static_cast<unsigned char>(s[i]) == 0xED &&
        (static_cast<unsigned char>(s[i + 1]) & 0xE0) == 0xA0)
      return true;
  return false;
}

// Forwards every SAX event to the document under construction; refuses to nest deeper than
// kMaxDepth (RapidJSON has no depth limit of its own) and refuses strings that would not be
// valid UTF-8.
class DepthLimiter : public detail::ForwardingHandler<Document> {
public:
  explicit DepthLimiter(Document& doc) : ForwardingHandler(doc) {}
  bool too_deep() const { return too_deep_; }
  bool bad_surrogate() const { return bad_surrogate_; }

  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return valid(s, n) && target_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return valid(s, n) && target_.Key(s, n, copy);
  }
  bool StartObject() { return enter() && target_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    return target_.EndObject(n);
  }
  bool StartArray() { return enter() && target_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    return target_.EndArray(n);
  }

private:
  bool valid(const char* s, size_t n) {
    if (has_surrogate(s, n)) bad_surrogate_ = true;
    return !bad_surrogate_;
  }
  bool enter() {
    if (++depth_ > kMaxDepth) too_deep_ = true;
    return !too_deep_;
  }
  unsigned depth_ = 0;
  bool too_deep_ = false;
  bool bad_surrogate_ = false;
};

// Runs the reader for Document::Populate, which then moves the finished root into the document.
struct Generator {
  std::string_view text;
  rapidjson::ParseResult result;
  bool too_deep = false;
  bool bad_surrogate = false;

  bool operator()(Document& doc) {
    // Iterative parsing keeps the C++ stack flat whatever the input looks like.
    constexpr unsigned kFlags =
        rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
    rapidjson::Reader reader;
    DepthLimiter limiter(doc);
    result = reader.Parse<kFlags>(in, limiter);
    too_deep = limiter.too_deep();
    bad_surrogate = limiter.bad_surrogate();
    return !result.IsError();
  }
};

// Keeps only the last of several members with the same key, recursively; a Perl hash built
// from the same text would hold exactly those.
void keep_last_duplicates(Value& v) {
  if (v.IsArray()) {
    for (auto& e : v.GetArray())
      keep_last_duplicates(e);
    return;
  }
  if (!v.IsObject()) return;
  for (auto& m : v.GetObject())
    keep_last_duplicates(m.value);
  if (v.MemberCount() < 2) return;
  std::set<std::string_view> seen;
  std::vector<bool> drop(v.MemberCount(), false);
  bool any = false;
  for (rapidjson::SizeType i = v.MemberCount(); i-- > 0;) {
    const Value& k = (v.MemberBegin() + i)->name;
    if (!seen.emplace(k.GetString(), k.GetStringLength()).second) drop[i] = any = true;
  }
  if (!any) return;
  for (rapidjson::SizeType i = v.MemberCount(); i-- > 0;)
    if (drop[i]) v.EraseMember(v.MemberBegin() + i);
}

Status not_object() {
  return error("expected a JSON object");
}
Status missing(const char* field) {
  return error(std::string("missing field '") + field + "'");
}
Status wrong_type(const char* field, const char* what) {
  return error(std::string("field '") + field + "' must be " + what);
}

// The member, nullptr when absent or null, or an error when `obj` is not an object.
Result<const Value*> lookup(const Value& obj, const char* field) {
  if (!obj.IsObject()) return not_object();
  const Value* v = find(obj, field);
  return (v && !v->IsNull()) ? v : nullptr;
}

std::optional<int64_t> as_int64(const Value& v) {
  if (v.IsInt64()) return v.GetInt64();
  if (v.IsDouble()) {
    double d = v.GetDouble();
    // 2^63 is exactly representable; anything at or above it does not fit.
    if (std::isfinite(d) && d == std::trunc(d) && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

Result<std::vector<std::string>> string_array(const Value& v, const char* field) {
  if (!v.IsArray()) return wrong_type(field, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v.Size());
  for (const auto& e : v.GetArray()) {
    if (!e.IsString()) return wrong_type(field, "an array of strings");
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return out;
}

} // namespace

Result<Document> parse(std::string_view text) {
  // RapidJSON reads a NUL byte as the end of input and would ignore what follows; no valid
  // JSON text contains a raw NUL, so reject it up front.
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    size_t off = static_cast<const char*>(nul) - text.data();
    return error("invalid JSON: NUL byte at offset " + std::to_string(off));
  }
  Document doc;
  Generator gen{text, {}, false, false};
  doc.Populate(gen);
  if (gen.result.IsError()) {
    std::string what = gen.too_deep        ? "nesting deeper than " + std::to_string(kMaxDepth)
                       : gen.bad_surrogate ? std::string("lone UTF-16 surrogate in a string")
                                           : rapidjson::GetParseError_En(gen.result.Code());
    return error("invalid JSON: " + what + " at offset " + std::to_string(gen.result.Offset()));
  }
  keep_last_duplicates(doc);
  return doc;
}

Result<Document> parse_object(std::string_view text) {
  CX_ASSIGN_OR_RETURN(Document doc, parse(text));
  if (!doc.IsObject()) return error("not a JSON object");
  return doc;
}

const Value* find(const Value& obj, std::string_view field) {
  if (!obj.IsObject()) return nullptr;
  Value key(rapidjson::StringRef(field.data(), static_cast<rapidjson::SizeType>(field.size())));
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

Result<std::string> get_string(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(auto v, get_optional_string(obj, field));
  if (!v) return missing(field);
  return std::move(*v);
}

Result<std::string> get_string_or(const Value& obj, const char* field, std::string_view fallback) {
  CX_ASSIGN_OR_RETURN(auto v, get_optional_string(obj, field));
  return v ? std::move(*v) : std::string(fallback);
}

Result<std::optional<std::string>> get_optional_string(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return std::optional<std::string>();
  if (!v->IsString()) return wrong_type(field, "a string");
  return std::optional<std::string>(std::string(v->GetString(), v->GetStringLength()));
}

Result<int64_t> get_int64(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return missing(field);
  auto i = as_int64(*v);
  if (!i) return wrong_type(field, "an integer");
  return *i;
}

Result<int64_t> get_int64_or(const Value& obj, const char* field, int64_t fallback) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return fallback;
  auto i = as_int64(*v);
  if (!i) return wrong_type(field, "an integer");
  return *i;
}

Result<bool> get_bool(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return missing(field);
  if (!v->IsBool()) return wrong_type(field, "a boolean");
  return v->GetBool();
}

Result<bool> get_bool_or(const Value& obj, const char* field, bool fallback) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return fallback;
  if (!v->IsBool()) return wrong_type(field, "a boolean");
  return v->GetBool();
}

Result<std::vector<std::string>> get_string_array(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return missing(field);
  return string_array(*v, field);
}

Result<std::vector<std::string>> get_string_array_or(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return std::vector<std::string>();
  return string_array(*v, field);
}

Result<const Value*> get_object(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (!v) return missing(field);
  if (!v->IsObject()) return wrong_type(field, "an object");
  return v;
}

Result<const Value*> get_optional_object(const Value& obj, const char* field) {
  CX_ASSIGN_OR_RETURN(const Value* v, lookup(obj, field));
  if (v && !v->IsObject()) return wrong_type(field, "an object");
  return v;
}

bool is_truthy(const Value& v) {
  switch (v.GetType()) {
  case rapidjson::kNullType:
  case rapidjson::kFalseType:
    return false;
  case rapidjson::kTrueType:
  case rapidjson::kObjectType:
  case rapidjson::kArrayType:
    return true;
  case rapidjson::kStringType: {
    std::string_view s(v.GetString(), v.GetStringLength());
    return !(s.empty() || s == "0");
  }
  case rapidjson::kNumberType:
    if (v.IsUint64()) return v.GetUint64() != 0;
    if (v.IsInt64()) return v.GetInt64() != 0;
    return v.GetDouble() != 0.0;
  }
  return false;
}

std::optional<std::string> scalar_string(const Value& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsDouble()) {
    // Perl prints a negative zero as "0"; JSON::XS's encoder does not (see format_double).
    double d = v.GetDouble();
    return d == 0.0 ? std::string("0") : format_double(d);
  }
  return std::nullopt;
}

std::optional<std::string> scalar_member(const Value& obj, std::string_view field) {
  const Value* v = find(obj, field);
  if (!v) return std::nullopt;
  return scalar_string(*v);
}

std::string scalar_or_empty(const Value& obj, std::string_view field) {
  return scalar_member(obj, field).value_or(std::string());
}

} // namespace cx::json
