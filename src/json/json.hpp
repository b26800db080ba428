// JSON input over RapidJSON: parsing with the original's limits, typed field reads whose errors
// name the offending field, and the Perl truthiness the original applies to loose flags.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;

// JSON::XS's default max_depth. Deeper documents are rejected, which also bounds the recursion
// of every walker (writers, canonical form) over a parsed document.
inline constexpr unsigned kMaxDepth = 512;

// Parses one JSON text. The whole input must be one value (surrounding whitespace allowed),
// strings must be valid UTF-8 and nesting is at most kMaxDepth. Duplicate object keys keep the
// last occurrence only, as a Perl hash would, so every reader sees the same member.
// Errors read "invalid JSON: <RapidJSON's message> at offset <n>".
Result<Document> parse(std::string_view text);
// As parse, for a text that must be one JSON object: any other value fails with "not a JSON
// object".
Result<Document> parse_object(std::string_view text);

// The member `field` of `obj`; nullptr when `obj` is not an object or has no such member.
const Value* find(const Value& obj, std::string_view field);

// Typed reads. A null member counts as absent (Perl's `defined`). The required forms fail with
// "missing field '<f>'" or "field '<f>' must be <a type>"; the _or forms return `fallback` when
// the member is absent but still fail on a member of the wrong type. Reading from something
// that is not an object fails with "expected a JSON object".
Result<std::string> get_string(const Value& obj, const char* field);
Result<std::string> get_string_or(const Value& obj, const char* field, std::string_view fallback);
Result<std::optional<std::string>> get_optional_string(const Value& obj, const char* field);

// Integers: JSON integers, and doubles with an integral value in range (Perl does not tell
// 5 from 5.0 apart).
Result<int64_t> get_int64(const Value& obj, const char* field);
Result<int64_t> get_int64_or(const Value& obj, const char* field, int64_t fallback);

// Strict JSON booleans. For the original's loose flags use is_truthy() instead.
Result<bool> get_bool(const Value& obj, const char* field);
Result<bool> get_bool_or(const Value& obj, const char* field, bool fallback);

// Arrays whose every element is a string. The _or form returns an empty vector when absent.
Result<std::vector<std::string>> get_string_array(const Value& obj, const char* field);
Result<std::vector<std::string>> get_string_array_or(const Value& obj, const char* field);

// Objects; the optional form yields nullptr when absent.
Result<const Value*> get_object(const Value& obj, const char* field);
Result<const Value*> get_optional_object(const Value& obj, const char* field);

// Perl truthiness of a decoded value: false for null, false, numeric zero, "" and "0"; true for
// everything else, including "0.0", "00", " ", arrays and objects. The original tests flags such
// as `async` this way, so {"async":"yes"} and {"async":1} both mean true.
bool is_truthy(const Value& v);

// A scalar as Perl would stringify it: strings as they are, integers in decimal, doubles in
// "%.15g" (with -0 printed as "0"). nullopt for null, booleans, arrays and objects, which Perl
// holds as undef or references rather than plain scalars.
std::optional<std::string> scalar_string(const Value& v);
// The member `field` of `obj` read by scalar_string: nullopt when absent or not a scalar.
std::optional<std::string> scalar_member(const Value& obj, std::string_view field);
// The same, "" for nullopt: a loose string field as the original reads it.
std::string scalar_or_empty(const Value& obj, std::string_view field);

} // namespace cx::json
