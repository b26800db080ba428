"""Checks API responses against the API's own OpenAPI document (stdlib only).

A validator for the subset of JSON Schema the document uses: type (a name or a list of them),
const, enum, pattern, minItems/maxItems, required, properties, additionalProperties, items,
oneOf, nullable and $ref into the document. It refuses a schema that uses any other validation
keyword rather than pass what it cannot check. Its messages read as the C++ validator's
(src/proto/schema.hpp): "body.results[0].exit: expected integer, got string".

A response is checked against the schema the document gives for its method, path and status.
An error status that the operation does not list (a framing 400, 413 or 431, an engine 500, and
every answer of a path that is no route) is checked against ErrorResponse: every error the
server sends has that shape.
"""
import json
import re

SCHEMA_PREFIX = "#/components/schemas/"

# Keywords that say nothing about validity.
ANNOTATIONS = {"description", "examples", "default", "title", "format", "summary"}
CHECKED = {"type", "const", "enum", "pattern", "minItems", "maxItems", "required", "properties",
           "additionalProperties", "items", "oneOf", "nullable", "$ref"}


def type_of(value):
    """The JSON type name of a decoded value; an integral number is an integer."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def has_type(value, name):
    actual = type_of(value)
    return actual == name or (name == "number" and actual == "integer")


def resolve(doc, ref):
    """The object a local $ref ("#/a/b") points at."""
    if not ref.startswith("#/"):
        raise AssertionError("unsupported $ref %r" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise AssertionError("$ref %r does not resolve" % ref)
        node = node[part]
    return node


def dump(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def validate(schema, value, doc, path="body"):
    """Returns the first problem of `value` against `schema` as a message, or None."""
    unknown = set(schema) - CHECKED - ANNOTATIONS
    if unknown:
        raise AssertionError("%s: the validator does not know %s" % (path, sorted(unknown)))
    if "$ref" in schema:
        return validate(resolve(doc, schema["$ref"]), value, doc, path)
    if value is None and schema.get("nullable"):
        return None
    if "oneOf" in schema:
        problems = [validate(alt, value, doc, path) for alt in schema["oneOf"]]
        matched = problems.count(None)
        if matched != 1:
            message = "%s: matches %d of the %d alternatives of oneOf" % (path, matched,
                                                                         len(schema["oneOf"]))
            # What each alternative found, so that a body that breaks the one it meant to
            # match still says where.
            return message + (" (%s)" % "; ".join(problems) if matched == 0 else "")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(has_type(value, n) for n in names):
            return "%s: expected %s, got %s" % (path, " or ".join(names), type_of(value))
    if "const" in schema and not (type_of(value) == type_of(schema["const"])
                                  and value == schema["const"]):
        return "%s: expected %s, got %s" % (path, dump(schema["const"]), dump(value))
    # The live document sets "enum": null on hosts lists when no agent is registered.
    if schema.get("enum") is not None and not any(
            type_of(value) == type_of(e) and value == e for e in schema["enum"]):
        return "%s: %s is not one of %s" % (path, dump(value), ", ".join(
            e if isinstance(e, str) else dump(e) for e in schema["enum"]))
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        return "%s: %s does not match %s" % (path, dump(value), schema["pattern"])
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return "%s: expected at least %d items, got %d" % (path, schema["minItems"], len(value))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return "%s: expected at most %d items, got %d" % (path, schema["maxItems"], len(value))
        if "items" in schema:
            for i, item in enumerate(value):
                problem = validate(schema["items"], item, doc, "%s[%d]" % (path, i))
                if problem:
                    return problem
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return "%s: missing required member '%s'" % (path, name)
        for name, sub in props.items():
            if name in value:
                problem = validate(sub, value[name], doc, "%s.%s" % (path, name))
                if problem:
                    return problem
        extra = schema.get("additionalProperties", True)
        for name, member in value.items():
            if name in props or extra is True:
                continue
            if extra is False:
                return "%s: member '%s' is not allowed" % (path, name)
            problem = validate(extra, member, doc, '%s["%s"]' % (path, name))
            if problem:
                return problem
    return None


def find_operation(doc, method, path):
    """The operation object serving `method` `path` (exact, as the router matches: the query
    string is part of the path, and a {param} segment must match its schema's pattern), or None."""
    for template, item in doc.get("paths", {}).items():
        op = item.get(method.lower())
        if op is None:
            continue
        patterns = {p["name"]: p.get("schema", {}).get("pattern", "^[^/]+$")
                    for p in op.get("parameters", []) if p.get("in") == "path"}
        tparts, parts = template.split("/"), path.split("/")
        if len(tparts) != len(parts):
            continue
        if all(t == p or (t.startswith("{") and t.endswith("}") and p
                          and re.search(patterns.get(t[1:-1], "^[^/]+$"), p))
               for t, p in zip(tparts, parts)):
            return op
    return None


def response_schema(doc, method, path, status):
    """The JSON schema the document gives for this response (see the module's docstring)."""
    op = find_operation(doc, method, path)
    responses = op.get("responses", {}) if op else {}
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        if status >= 400:
            return {"$ref": SCHEMA_PREFIX + "ErrorResponse"}
        raise AssertionError("%s %s answered %d, which the OpenAPI document does not describe"
                             % (method, path, status))
    if "$ref" in response:
        response = resolve(doc, response["$ref"])
    content = response.get("content", {})
    if "application/json" not in content and any(t.startswith("text/plain") for t in content):
        return None  # a text body (GET /metrics): its test checks the text itself
    try:
        return response["content"]["application/json"]["schema"]
    except KeyError:
        raise AssertionError("%s %s %d: the document gives no application/json schema"
                             % (method, path, status))


def check_response(doc, method, path, status, body):
    """Fails the test (AssertionError) unless `body`, the text of the response, is JSON that
    matches the document's schema for `method` `path` and `status`."""
    schema = response_schema(doc, method, path, status)
    if schema is None:
        return
    try:
        value = json.loads(body)
    except ValueError:
        raise AssertionError("%s %s %d: the body is not JSON: %r" % (method, path, status, body))
    problem = validate(schema, value, doc)
    if problem:
        raise AssertionError("%s %s %d does not match the OpenAPI document: %s\nbody: %s"
                             % (method, path, status, problem, body))
