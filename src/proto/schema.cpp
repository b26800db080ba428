// Body descriptions: validation and OpenAPI rendering; see schema.hpp.
#include "proto/schema.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "base/strings.hpp"

namespace cx::proto {

namespace {

using Type = Schema::Type;

// Indexed by Schema::Type.
constexpr std::string_view kTypeNames[] = {"any",    "null",   "boolean", "integer",
                                           "number", "string", "array",   "object"};

std::string_view type_name(Type t) {
  return kTypeNames[static_cast<size_t>(t)];
}

bool is_integer(const json::Value& v) {
  if (v.IsInt64() || v.IsUint64()) return true;
  if (!v.IsDouble()) return false;
  double d = v.GetDouble();
  return std::isfinite(d) && d == std::trunc(d);
}

// The most specific type of a value: an integral number is an integer.
Type type_of(const json::Value& v) {
  if (v.IsNull()) return Type::null;
  if (v.IsBool()) return Type::boolean;
  if (v.IsNumber()) return is_integer(v) ? Type::integer : Type::number;
  if (v.IsString()) return Type::string;
  if (v.IsArray()) return Type::array;
  return Type::object;
}

bool has_type(const json::Value& v, Type t) {
  Type actual = type_of(v);
  return t == Type::any || actual == t || (t == Type::number && actual == Type::integer);
}

std::string_view as_view(const json::Value& s) {
  return {s.GetString(), s.GetStringLength()};
}

} // namespace

// --- Building --------------------------------------------------------------------------------

Schema Schema::string() {
  Schema s;
  s.type_ = Type::string;
  return s;
}

Schema Schema::integer() {
  Schema s;
  s.type_ = Type::integer;
  return s;
}

Schema Schema::number() {
  Schema s;
  s.type_ = Type::number;
  return s;
}

Schema Schema::boolean() {
  Schema s;
  s.type_ = Type::boolean;
  return s;
}

Schema Schema::object() {
  return object({});
}

Schema Schema::object(std::vector<Member> members) {
  Schema s;
  s.type_ = Type::object;
  s.members_ = std::move(members);
  return s;
}

Schema Schema::array(Schema items) {
  Schema s;
  s.type_ = Type::array;
  s.items_ = std::make_shared<const Schema>(std::move(items));
  return s;
}

Schema Schema::ref(const Definition& target) {
  Schema s;
  s.ref_ = &target;
  return s;
}

Schema Schema::one_of(std::vector<Schema> alternatives) {
  Schema s;
  s.one_of_ = std::move(alternatives);
  return s;
}

Schema Schema::constant(bool value) && {
  const_ = value;
  return std::move(*this);
}

Schema Schema::constant(std::string_view value) && {
  const_ = std::string(value);
  return std::move(*this);
}

Schema Schema::enums(std::vector<std::string> values) && {
  enum_ = std::move(values);
  return std::move(*this);
}

Schema Schema::min_items(int n) && {
  min_items_ = n;
  return std::move(*this);
}

Schema Schema::max_items(int n) && {
  max_items_ = n;
  return std::move(*this);
}

Schema Schema::values(Schema each) && {
  values_ = std::make_shared<const Schema>(std::move(each));
  return std::move(*this);
}

Schema Schema::extra_members() && {
  extra_members_ = true;
  return std::move(*this);
}

Schema Schema::describe(std::string_view text) && {
  description_ = text;
  return std::move(*this);
}

Schema Schema::pattern(std::string_view regex) && {
  pattern_ = regex;
  return std::move(*this);
}

Schema Schema::example(std::string_view text) && {
  examples_.emplace_back(text);
  return std::move(*this);
}

Schema Schema::default_json(std::string_view text) && {
  default_json_ = text;
  return std::move(*this);
}

const Member& Schema::member(std::string_view name) const {
  auto it = std::find_if(members_.begin(), members_.end(),
                         [name](const Member& m) { return m.name == name; });
  CX_CHECK(it != members_.end());
  return *it;
}

Member Member::describe(std::string_view text) && {
  schema = std::move(schema).describe(text);
  return std::move(*this);
}

Member required(std::string name, Schema schema) {
  return Member{std::move(name), std::move(schema), true};
}

Member optional(std::string name, Schema schema) {
  return Member{std::move(name), std::move(schema), false};
}

Member optional(const Definition& from, std::string_view name) {
  Member m = from.schema.member(name);
  m.required = false;
  return m;
}

Member required(const Definition& from, std::string_view name) {
  Member m = from.schema.member(name);
  m.required = true;
  return m;
}

// --- Validation ------------------------------------------------------------------------------

Status validate(const Schema& schema, const json::Value& value) {
  std::string path = "body";
  return schema.check(value, path);
}

Status Schema::check(const json::Value& v, std::string& path) const {
  if (ref_) return ref_->schema.check(v, path);
  if (!one_of_.empty()) {
    size_t matched = 0;
    for (const Schema& alt : one_of_) {
      std::string p = path;
      if (alt.check(v, p).ok()) ++matched;
    }
    if (matched != 1)
      return error(path + ": matches " + std::to_string(matched) + " of the " +
                   std::to_string(one_of_.size()) + " alternatives of oneOf");
  }
  if (!has_type(v, type_))
    return error(path + ": expected " + std::string(type_name(type_)) + ", got " +
                 std::string(type_name(type_of(v))));
  if (const bool* b = std::get_if<bool>(&const_); b && !(v.IsBool() && v.GetBool() == *b))
    return error(path + ": expected " + (*b ? "true" : "false") + ", got " + json::to_string(v));
  if (const std::string* s = std::get_if<std::string>(&const_);
      s && !(v.IsString() && as_view(v) == *s))
    return error(path + ": expected \"" + *s + "\", got " + json::to_string(v));
  if (!enum_.empty()) {
    bool listed = false;
    for (const std::string& e : enum_)
      listed = listed || (v.IsString() && as_view(v) == e);
    if (!listed)
      return error(path + ": " + json::to_string(v) + " is not one of " + join(enum_, ", "));
  }
  if (v.IsArray()) {
    const auto n = static_cast<int64_t>(v.Size());
    if (min_items_ >= 0 && n < min_items_)
      return error(path + ": expected at least " + std::to_string(min_items_) + " items, got " +
                   std::to_string(n));
    if (max_items_ >= 0 && n > max_items_)
      return error(path + ": expected at most " + std::to_string(max_items_) + " items, got " +
                   std::to_string(n));
    if (items_) {
      const size_t mark = path.size();
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        path += "[" + std::to_string(i) + "]";
        CX_TRY(items_->check(v[i], path));
        path.resize(mark);
      }
    }
  }
  if (v.IsObject()) {
    const size_t mark = path.size();
    for (const Member& m : members_) {
      const json::Value* got = json::find(v, m.name);
      if (!got) {
        if (m.required) return error(path + ": missing required member '" + m.name + "'");
        continue;
      }
      path += "." + m.name;
      CX_TRY(m.schema.check(*got, path));
      path.resize(mark);
    }
    if (values_) {
      for (const auto& it : v.GetObject()) {
        std::string_view key = as_view(it.name);
        bool listed = false;
        for (const Member& m : members_)
          listed = listed || m.name == key;
        if (listed) continue;
        path += "[\"" + std::string(key) + "\"]";
        CX_TRY(values_->check(it.value, path));
        path.resize(mark);
      }
    }
  }
  return {};
}

// --- OpenAPI ---------------------------------------------------------------------------------

void write_openapi(json::Writer& w, const Schema& schema) {
  schema.write(w);
}

void Schema::write(json::Writer& w) const {
  w.begin_object();
  if (ref_) {
    w.member("$ref", "#/components/schemas/" + std::string(ref_->name)).end_object();
    return;
  }
  if (type_ != Type::any) w.member("type", type_name(type_));
  if (const bool* b = std::get_if<bool>(&const_)) w.member("const", *b);
  if (const std::string* s = std::get_if<std::string>(&const_)) w.member("const", *s);
  if (!enum_.empty()) w.key("enum").string_array(enum_);
  std::vector<std::string> required_names;
  for (const Member& m : members_)
    if (m.required) required_names.push_back(m.name);
  if (!required_names.empty()) w.key("required").string_array(required_names);
  if (!pattern_.empty()) w.member("pattern", pattern_);
  if (!examples_.empty()) w.key("examples").string_array(examples_);
  if (min_items_ >= 0) w.member("minItems", min_items_);
  if (max_items_ >= 0) w.member("maxItems", max_items_);
  if (!default_json_.empty()) w.key("default").raw(default_json_);
  if (!description_.empty()) w.member("description", description_);
  if (items_) {
    w.key("items");
    items_->write(w);
  }
  if (values_) {
    w.key("additionalProperties");
    values_->write(w);
  } else if (extra_members_) {
    w.member("additionalProperties", true);
  }
  if (!members_.empty()) {
    w.key("properties").begin_object();
    for (const Member& m : members_) {
      w.key(m.name);
      m.schema.write(w);
    }
    w.end_object();
  }
  if (!one_of_.empty()) {
    w.key("oneOf").begin_array();
    for (const Schema& alt : one_of_)
      alt.write(w);
    w.end_array();
  }
  w.end_object();
}

} // namespace cx::proto
