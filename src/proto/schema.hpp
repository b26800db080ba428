// Descriptions of JSON bodies: the members an object has, their JSON types, which are required
// and which values are allowed. One description validates a parsed body (validate) and renders
// as an OpenAPI 3.1 schema object (write_openapi), so what the API documents is what the tests
// check real bodies against. The descriptions themselves are in wire_schemas.hpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::proto {

struct Member;
struct Definition;

// The shape of one JSON value. Built once, at first use, from the factories and refinements
// below, e.g.
//   Schema::object({required("host", Schema::string()), optional("rtt", Schema::string())})
// Refinements apply to temporaries and return the refined schema.
//
// Validated: the JSON type ("integer" takes an integral double too, as JSON Schema does),
// const, enum, min/max items, required members, the listed members, the other members against
// values(), array items, one_of (exactly one alternative matches) and references. Documentation
// only: descriptions, pattern, examples, default and extra_members().
class Schema {
public:
  enum class Type { any, null, boolean, integer, number, string, array, object };

  static Schema string();
  static Schema integer();
  static Schema number();
  static Schema boolean();
  // An object with these members, in document order. Members not listed are allowed.
  // (Two overloads, not a default argument: Member is incomplete here, and clang instantiates
  // a defaulted vector<Member> where it is declared.)
  static Schema object();
  static Schema object(std::vector<Member> members);
  static Schema array(Schema items);
  // {"$ref":"#/components/schemas/<name>"}: the value must match the definition.
  static Schema ref(const Definition& target);
  // No type of its own: exactly one alternative must match.
  static Schema one_of(std::vector<Schema> alternatives);

  Schema constant(bool value) &&;
  Schema constant(std::string_view value) &&;
  Schema constant(const char* value) &&; // defined below Member, which it needs complete
  Schema enums(std::vector<std::string> values) &&;
  Schema min_items(int n) &&;
  Schema max_items(int n) &&;
  // additionalProperties: every member not listed must match `each`.
  Schema values(Schema each) &&;
  // "additionalProperties": true, said explicitly (members not listed are allowed anyway).
  Schema extra_members() &&;
  Schema describe(std::string_view text) &&;
  Schema pattern(std::string_view regex) &&;
  Schema example(std::string_view text) &&;
  // The default as JSON text, e.g. "[]" or "false".
  Schema default_json(std::string_view text) &&;

  const std::vector<std::string>& enum_values() const { return enum_; }
  const std::vector<Member>& members() const { return members_; }
  // The member `name` of an object schema; it must exist (a description that names a member
  // another lacks is a bug, caught at first use).
  const Member& member(std::string_view name) const;

  friend Status validate(const Schema& schema, const json::Value& value);
  friend void write_openapi(json::Writer& w, const Schema& schema);

private:
  // validate() and write_openapi(); `path` is where `value` sits ("body.results[0]").
  Status check(const json::Value& value, std::string& path) const;
  void write(json::Writer& w) const;

  Type type_ = Type::any;
  const Definition* ref_ = nullptr;
  std::variant<std::monostate, bool, std::string> const_;
  std::vector<std::string> enum_;
  int min_items_ = -1, max_items_ = -1;
  std::vector<Member> members_;
  std::shared_ptr<const Schema> items_;
  std::shared_ptr<const Schema> values_;
  bool extra_members_ = false;
  std::vector<Schema> one_of_;
  std::string description_, pattern_, default_json_;
  std::vector<std::string> examples_;
};

struct Member {
  std::string name;
  Schema schema;
  bool required = false;

  // The same member with its own description (a member taken from another body, said the way
  // this body means it).
  Member describe(std::string_view text) &&;
};

inline Schema Schema::constant(const char* value) && {
  return std::move(*this).constant(std::string_view(value));
}

Member required(std::string name, Schema schema);
Member optional(std::string name, Schema schema);
// The member `name` of the object `from`, optional here: for bodies that carry another's
// members through (the API's per-host results carry the agent's reply).
Member optional(const Definition& from, std::string_view name);
Member required(const Definition& from, std::string_view name);

// A named description: an OpenAPI component, or an agent reply.
struct Definition {
  std::string_view name;
  Schema schema;
};

// Checks `value` against `schema`. The error names the place and the rule, e.g.
// "body.results[0].exit: expected integer, got string" or
// "body.results[0]: missing required member 'host'".
Status validate(const Schema& schema, const json::Value& value);

// The OpenAPI 3.1 schema object, keywords in a fixed order: $ref | type, const, enum, required,
// pattern, examples, minItems, maxItems, default, description, items, additionalProperties,
// properties, oneOf.
void write_openapi(json::Writer& w, const Schema& schema);

} // namespace cx::proto
