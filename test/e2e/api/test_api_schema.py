"""The response check of the API e2e tests (apischema.py) against the document the API serves:
real bodies pass, and hand-made bodies that break the schema fail, naming the member. Every other
API e2e test runs its responses through the same check (apifix)."""
import json
import unittest

import apifix
import apischema
from apifix import harness

HOST_STATES = "ok, error, timeout, unreachable, busy, denied"


class ResponseCheck(unittest.TestCase):
    def check(self, method, path, status, body):
        """None when the body passes, else the check's message."""
        text = body if isinstance(body, str) else json.dumps(body)
        try:
            apischema.check_response(apifix.openapi_document(), method, path, status, text)
        except AssertionError as e:
            return str(e)
        return None

    def test_real_bodies_pass(self):
        # From the original's transcripts (dispatcher-and-api transcripts 14-16) and ours.
        rows = [
            ("GET", "/health", 200, {"ok": True, "version": "0.12.3"}),
            ("GET", "/", 200, {"endpoints": [{"path": "/health", "method": "GET"}],
                               "live_spec": "/openapi-live.json", "name": "ctrl-exec-api",
                               "version": "0.12.3", "spec": "/openapi.json"}),
            ("POST", "/ping", 200, {"results": [{"version": "0.12.3", "host": "vm",
                                                 "staged": False, "status": "ok", "rtt": "72ms",
                                                 "reqid": "566ee5b46275cc14",
                                                 "expiry": "Feb 27 04:17:27 2029 GMT"}],
                                    "ok": True}),
            ("POST", "/run", 200, {"ok": True, "results": [
                {"reqid": "a1b166b8f5739d16", "error": "script not permitted",
                 "script": "not-allowlisted", "rtt": "35ms", "host": "vm", "exit": -1}],
                "reqid": "a1b166b8f5739d16"}),
            ("POST", "/run", 202, {"ok": True, "async": True, "reqid": "7bc0c09a36912e82",
                                   "results": [{"status": "accepted", "script": "noop",
                                                "rtt": "39ms", "reqid": "7bc0c09a36912e82",
                                                "host": "vm"}]}),
            # An agent that refuses async runs answers as a sync run would: no status.
            ("POST", "/run", 202, {"ok": True, "async": True, "reqid": "r", "results": [
                {"script": "noop", "exit": -1, "reqid": "r", "rtt": "3ms", "host": "vm",
                 "error": "async runs are not yet supported with the executor",
                 "state": "error"}]}),
            ("GET", "/status/ad0cde9324b26837", 200, {
                "complete": True, "ok": True, "created": 1795580511, "script": "echo-args",
                "reqid": "ad0cde9324b26837", "pending": [], "mode": "async",
                "hosts": {"vm": {"stderr": "", "exit": 0, "status": "done", "stdout": "x\n"}}}),
            ("GET", "/discovery", 200, {"ok": True, "hosts": {"vm": {
                "version": "0.12.3", "host": "vm", "status": "ok", "rtt": "47ms", "tags": {},
                "scripts": [{"profile": "default", "executable": True, "name": "noop",
                             "path": "/opt/ctrl-exec-scripts/noop.sh"}]}}}),
            ("POST", "/run", 409, {"conflicts": ["vm:noop"], "error": "locked", "code": 4,
                                   "ok": False}),
            # Error statuses an operation does not list, and paths that are no route.
            ("POST", "/ping", 413, {"error": "payload too large", "ok": False,
                                    "detail": "body exceeds 1048576 bytes"}),
            ("GET", "/nope", 404, {"error": "not found", "detail": "no route for GET /nope",
                                   "ok": False}),
            ("GET", "/status/ABCDEF", 404, {"ok": False, "error": "not found"}),
        ]
        for method, path, status, body in rows:
            with self.subTest(method=method, path=path, status=status):
                self.assertIsNone(self.check(method, path, status, body))

    def test_bodies_that_break_the_schema_fail(self):
        rows = [
            ("POST", "/ping", 200,
             {"ok": True, "results": [{"host": "a", "status": "ok", "state": "asleep"}]},
             'body.results[0].state: "asleep" is not one of ' + HOST_STATES),
            ("GET", "/health", 200, {"ok": True}, "body: missing required member 'version'"),
            ("GET", "/health", 200, {"ok": 1, "version": "0.12.3"},
             "body.ok: expected boolean, got integer"),
            ("POST", "/run", 200, {"ok": True, "reqid": "r", "results": [{"host": "a",
                                                                          "exit": "0"}]},
             "body.results[0].exit: expected integer, got string"),
            ("POST", "/run", 200, {"ok": True, "reqid": "r", "results": [{"host": "a",
                                                                          "exit": True}]},
             "body.results[0].exit: expected integer, got boolean"),
            ("POST", "/run", 202, {"ok": True, "reqid": "r", "results": []},
             "body: missing required member 'async'"),
            ("GET", "/status/abc", 200, {"ok": True, "reqid": "abc", "script": "s",
                                         "mode": "async", "complete": False,
                                         "hosts": {"a": {"status": "gone"}}},
             "body.hosts: matches 0 of the 2 alternatives of oneOf"),
            ("GET", "/status/abc", 200, {"ok": True, "reqid": "abc", "script": "s",
                                         "mode": "later", "complete": True},
             'body.mode: "later" is not one of sync, async'),
            ("GET", "/", 200, {"name": "ctrl-exec-api", "version": "v", "spec": "/openapi.json",
                               "live_spec": "/openapi-live.json",
                               "endpoints": [{"method": "GET"}]},
             "body.endpoints[0]: missing required member 'path'"),
            ("GET", "/", 200, {"name": "other", "version": "v", "spec": "s", "live_spec": "l",
                               "endpoints": []},
             'body.name: expected "ctrl-exec-api", got "other"'),
            ("POST", "/discovery", 200,
             {"ok": True, "hosts": {"a": {"host": "a", "status": "ok",
                                          "scripts": [{"path": "/x"}]}}},
             'body.hosts["a"].scripts[0]: missing required member \'name\''),
            ("POST", "/run", 409, {"ok": True, "error": "locked"},
             "body.ok: expected false, got true"),
            ("GET", "/health", 431, {"ok": False}, "body: missing required member 'error'"),
            ("GET", "/health", 201, {"ok": True}, "GET /health answered 201, which the OpenAPI "
                                                  "document does not describe"),
            ("GET", "/nope", 200, {"ok": True}, "GET /nope answered 200, which the OpenAPI "
                                                "document does not describe"),
            ("GET", "/health", 200, "ok", "GET /health 200: the body is not JSON: 'ok'"),
        ]
        for method, path, status, body, error in rows:
            with self.subTest(method=method, path=path, status=status, error=error):
                problem = self.check(method, path, status, body)
                self.assertIsNotNone(problem)
                self.assertIn(error, problem)

    def test_validator_rules(self):
        doc = {"components": {"schemas": {"Pair": {"type": "object", "required": ["a"],
                                                   "properties": {"a": {"type": "integer"}}}}}}
        rows = [
            ({"type": "integer"}, 5, None),
            ({"type": "integer"}, 5.0, None),
            ({"type": "integer"}, 5.5, "body: expected integer, got number"),
            ({"type": "number"}, 5, None),
            ({"type": "integer"}, False, "body: expected integer, got boolean"),
            ({"type": ["string", "null"]}, None, None),
            ({"type": ["string", "null"]}, 1, "body: expected string or null, got integer"),
            ({"type": "string", "nullable": True}, None, None),
            ({"type": "string", "pattern": "^[a-f0-9]+$"}, "abc", None),
            ({"type": "string", "pattern": "^[a-f0-9]+$"}, "ABC",
             'body: "ABC" does not match ^[a-f0-9]+$'),
            ({"type": "string", "enum": None}, "any", None),
            ({"const": 1}, True, "body: expected 1, got true"),
            ({"type": "array", "minItems": 1}, [], "body: expected at least 1 items, got 0"),
            ({"type": "object", "additionalProperties": False, "properties": {"a": {}}},
             {"a": 1, "b": 2}, "body: member 'b' is not allowed"),
            ({"$ref": "#/components/schemas/Pair"}, {"a": 1}, None),
            ({"$ref": "#/components/schemas/Pair"}, {"a": "1"},
             "body.a: expected integer, got string"),
            ({"oneOf": [{"type": "string"}, {"type": "string", "enum": ["x"]}]}, "x",
             "body: matches 2 of the 2 alternatives of oneOf"),
        ]
        for schema, value, error in rows:
            with self.subTest(schema=schema, value=value):
                self.assertEqual(apischema.validate(schema, value, doc), error)
        # A keyword it cannot check is refused, not passed over.
        with self.assertRaisesRegex(AssertionError, "does not know"):
            apischema.validate({"anyOf": [{"type": "string"}]}, "x", doc)
        with self.assertRaisesRegex(AssertionError, "does not resolve"):
            apischema.validate({"$ref": "#/components/schemas/Nope"}, {}, doc)


if __name__ == "__main__":
    harness.main()
