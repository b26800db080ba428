"""ctrl-exec-api against a dispatcher with three real, paired agents (dispatcher-and-api §6.5):
every route that reaches agents, the auth decisions per endpoint, owner-gated /status, async
runs, lock conflicts, unknown agents, the live OpenAPI document, and TLS session reuse."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import apifix  # noqa: E402
import displib  # noqa: E402
from apifix import harness  # noqa: E402


class ApiFleet(harness.TestCase):
    extra = "api_auth_default = allow\n"

    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        self.fleet = displib.Fleet(self, n=3, dispatcher_extra="api_bind = 127.0.0.1\n"
                                   "api_port = %d\nread_timeout = 5\n%s" % (self.port, self.extra))
        self.api = apifix.start_api(self.root, self.port)

    def call(self, method, path, body=None, headers=()):
        data = None if body is None else body if isinstance(body, str) else json.dumps(body)
        status, text, head = apifix.curl(apifix.url(self.port, path), method=method, data=data,
                                         headers=headers, timeout=60)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


class AllowAll(ApiFleet):
    def test_ping_run_and_status(self):
        names = self.fleet.names()
        st, doc = self.call("POST", "/ping", {"hosts": names})
        self.assertEqual(st, 200, doc)
        self.assertIs(doc["ok"], True)
        self.assertEqual(sorted(r["host"] for r in doc["results"]), sorted(names))
        for r in doc["results"]:
            self.assertEqual((r["status"], r["state"]), ("ok", "ok"))

        args = ["two words", "$(id)", ";", ""]
        st, doc = self.call("POST", "/run", {"hosts": names, "script": "echo-args", "args": args,
                                              "username": "alice"})
        self.assertEqual(st, 200, doc)
        self.assertIs(doc["ok"], True)
        reqid = doc["reqid"]
        self.assertRegex(reqid, r"^[0-9a-f]{16}$")
        for r in doc["results"]:
            self.assertEqual(r["exit"], 0)
            self.assertEqual(r["reqid"], reqid)
            self.assertEqual(r["stdout"], "argc=4\n[two words]\n[$(id)]\n[;]\n[]\n")
        rec = json.loads(self.root.read("/var/lib/ctrl-exec/runs/%s.json" % reqid))
        self.assertEqual(rec["submitter"], {"username": "alice", "source_ip": "127.0.0.1"})
        self.assertEqual(rec["hosts"], names)

        st, doc = self.call("GET", "/status/" + reqid)
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["ok"], doc["mode"], doc["complete"]), (True, "sync", True))
        self.assertNotIn("submitter", doc)
        self.assertEqual(len(doc["results"]), 3)
        # The CLI reads the same store.
        r = self.fleet.ced("status", reqid)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("[COMPLETE]", r.out)
        self.assertEqual(self.fleet.ced("wait", reqid).rc, 0)

        # A failing script is still 200: per-host failures are in the results.
        # A host named twice runs once (issue 11, defect 4).
        st, doc = self.call("POST", "/run", {"hosts": [names[0], names[0]], "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual([r["host"] for r in doc["results"]], [names[0]])
        rec = json.loads(self.root.read("/var/lib/ctrl-exec/runs/%s.json" % doc["reqid"]))
        self.assertEqual(rec["hosts"], [names[0]])

        st, doc = self.call("POST", "/run", {"hosts": names[:1], "script": "fail"})
        self.assertEqual((st, doc["results"][0]["exit"]), (200, 3))

    def test_async_then_status(self):
        names = self.fleet.names()
        st, doc = self.call("POST", "/run", {"hosts": names, "script": "sleeper", "args": ["1"],
                                              "async": True})
        self.assertEqual(st, 202, doc)
        self.assertIs(doc["async"], True)
        reqid = doc["reqid"]
        self.assertEqual({r["status"] for r in doc["results"]}, {"accepted"})

        def complete():
            s, d = self.call("GET", "/status/" + reqid)
            self.assertEqual(s, 200, d)
            return d if d["complete"] else None
        done = harness.wait_until(complete, timeout=30, interval=0.3, what="async completion")
        self.assertEqual(done["mode"], "async")
        self.assertEqual(done["pending"], [])
        for n in names:
            self.assertEqual((done["hosts"][n]["status"], done["hosts"][n]["exit"],
                              done["hosts"][n]["stdout"]), ("done", 0, "slept\n"))

        st, doc = self.call("GET", "/status/0123456789abcdef")
        self.assertEqual((st, doc), (404, {"ok": False, "error": "not found",
                                          "detail": "no result for reqid 0123456789abcdef"}))
        st, _ = self.call("GET", "/status/ABCDEF")
        self.assertEqual(st, 404)  # upper case does not match the route

    def test_refusals(self):
        a = self.fleet.agents[0]
        st, doc = self.call("POST", "/run", {"hosts": [a.name, "nosuch"], "script": "noop"})
        self.assertEqual((st, doc), (404, {"ok": False, "error": "unknown agent",
                                          "detail": "not a registered agent: nosuch"}))
        st, doc = self.call("POST", "/ping", {"hosts": ["x", "y"]})
        self.assertEqual(doc["detail"], "not a registered agent: x, y")
        self.fleet.hold_lock(a.name, "noop")
        st, doc = self.call("POST", "/run", {"hosts": [a.name], "script": "noop"})
        self.assertEqual((st, doc), (409, {"ok": False, "error": "locked", "code": 4,
                                          "conflicts": ["%s:noop" % a.name]}))
        for body, detail in ((None, "request body required"),
                             ("[1]", "invalid JSON body"),
                             ({"hosts": []}, "hosts must be a non-empty array"),
                             ({"hosts": [a.name], "script": "a b"},
                              "script name required (alphanumeric and hyphens only)"),
                             ({"hosts": [a.name], "script": "noop", "args": "x"},
                              "args must be an array")):
            st, doc = self.call("POST", "/run", body)
            self.assertEqual((st, doc), (400, {"ok": False, "error": "bad request",
                                              "detail": detail}), body)

    def test_discovery_and_live_spec(self):
        a1, a2, a3 = self.fleet.agents
        a1.stop()
        a1.write_conf("[tags]\nenv = prod\nrole = db\n")
        a1.start()
        st, doc = self.call("GET", "/discovery")
        self.assertEqual(st, 200, doc)
        self.assertEqual(sorted(doc["hosts"]), sorted(self.fleet.names()))
        h = doc["hosts"][a1.name]
        self.assertEqual((h["status"], h["version"], h["tags"]), ("ok", "0.12.3",
                                                                {"env": "prod", "role": "db"}))
        self.assertIn("noop", [s["name"] for s in h["scripts"]])
        self.assertEqual(self.fleet.registry(a1.name)["tags"], {"env": "prod", "role": "db"})
        self.assertEqual(self.fleet.ced("list-agents", "--tags", "role=db").out.count("\n"), 3)
        st, doc = self.call("POST", "/discovery", {"hosts": [a2.name]})
        self.assertEqual(list(doc["hosts"]), [a2.name])

        st, static = self.call("GET", "/openapi.json")
        self.assertEqual(st, 200)
        st, live = self.call("GET", "/openapi-live.json")
        self.assertEqual(st, 200)
        served = {("GET", "/"), ("GET", "/health"), ("POST", "/ping"), ("POST", "/run"),
                  ("GET", "/discovery"), ("POST", "/discovery"), ("GET", "/status/{reqid}"),
                  ("GET", "/openapi.json"), ("GET", "/openapi-live.json"), ("GET", "/metrics")}
        for spec in (static, live):
            documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
            self.assertEqual(documented, served)
        names = sorted(self.fleet.names())
        schemas = live["components"]["schemas"]
        for s in ("PingRequest", "RunRequest", "DiscoveryRequest"):
            self.assertEqual(schemas[s]["properties"]["hosts"]["items"]["enum"], names, s)
        self.assertEqual(schemas["RunRequest"]["properties"]["script"]["enum"],
                         sorted(displib.SCRIPTS))
        self.assertEqual(live["x-ctrl-exec-scripts"]["noop"], [{"hosts": names}])
        self.assertRegex(live["info"]["version"], r"^0\.12\.3\+\d+$")
        # Every served route is in GET /'s list (GET / itself aside).
        st, index = self.call("GET", "/")
        listed = {(e["method"], e["path"]) for e in index["endpoints"]}
        self.assertEqual(listed, served - {("GET", "/")})

    def test_sessions_to_agents_are_reused(self):
        name = self.fleet.agents[0].name
        for _ in range(3):
            st, doc = self.call("POST", "/ping", {"hosts": [name]})
            self.assertEqual(doc["results"][0]["status"], "ok")
        lines = [l for l in self.api.err().splitlines() if l.startswith("ctrl-exec-api: ACTION=ping ")]
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].endswith("TLS=full"), lines[0])
        self.assertTrue(lines[1].endswith("TLS=resumed"), lines[1])
        self.assertTrue(lines[2].endswith("TLS=resumed"), lines[2])
        # The API never renews agent certs.
        self.assertNotIn("ACTION=renew", self.api.err())


class DenyByDefault(ApiFleet):
    extra = ""

    def test_no_hook_denies_everything(self):
        for method, path, body in (("GET", "/health", None),
                                   ("POST", "/ping", {"hosts": self.fleet.names()})):
            st, doc = self.call(method, path, body)
            self.assertEqual((st, doc), (403, {"ok": False, "error": "no auth hook configured",
                                              "code": 1}))


class Hooks(ApiFleet):
    # The hook's decision for an endpoint action comes from a file the test writes.
    extra = "auth_hook_timeout = 1\n"

    def setUp(self):
        self.decision = None
        super().setUp()

    def write_hook(self, body):
        path = apifix.write_hook(self.root, body)
        conf = self.root.read("/etc/ctrl-exec/ctrl-exec.conf")
        if "auth_hook =" not in conf:
            self.root.write("/etc/ctrl-exec/ctrl-exec.conf", conf + "auth_hook = %s\n" % path,
                            0o640)
            self.api.stop()
            self.api = apifix.start_api(self.root, self.port)
        return path

    def test_endpoint_decisions(self):
        name = self.fleet.agents[0].name
        rows = [
            ("exit 0", 200, None),
            ("exit 1", 403, {"ok": False, "error": "denied", "code": 1}),
            ("exit 2", 403, {"ok": False, "error": "bad credentials", "code": 2}),
            ("exit 3", 403, {"ok": False, "error": "insufficient privilege", "code": 3}),
            ("sleep 5", 403, None),
            ("kill -9 $$", 403, None),
        ]
        for action_body, status, expected in rows:
            self.write_hook('[ "$ENVEXEC_ACTION" = api ] && exit 0\n' + action_body)
            t0 = time.monotonic()
            st, doc = self.call("POST", "/run", {"hosts": [name], "script": "noop"})
            self.assertEqual(st, status, (action_body, doc))
            if expected:
                self.assertEqual(doc, expected)
            if status == 403:
                self.assertIs(doc["ok"], False)
            self.assertLess(time.monotonic() - t0, 5, action_body)
        self.assertIn("ACTION=auth-hook-timeout TIMEOUT=1", self.api.err())

    def test_status_is_owner_gated(self):
        name = self.fleet.agents[0].name
        # The owner is whoever submitted with username U; a status request is allowed when its
        # Bearer token equals the submitter's username.
        self.write_hook('[ "$ENVEXEC_ACTION" != status ] && exit 0\n'
                        '[ -n "$ENVEXEC_SUBMITTER" ] && [ "$ENVEXEC_TOKEN" = "$ENVEXEC_SUBMITTER" ]'
                        ' && exit 0\nexit 1')
        st, doc = self.call("POST", "/run", {"hosts": [name], "script": "noop",
                                              "username": "alice"})
        self.assertEqual(st, 200, doc)
        reqid = doc["reqid"]
        st, doc = self.call("GET", "/status/" + reqid, headers=["Authorization: Bearer alice"])
        self.assertEqual(st, 200, doc)
        st_other, other = self.call("GET", "/status/" + reqid,
                                    headers=["Authorization: Bearer mallory"])
        st_none, unknown = self.call("GET", "/status/fedcba9876543210",
                                     headers=["Authorization: Bearer alice"])
        self.assertEqual(st_other, 404)
        # Exactly the answer for an id that does not exist, apart from the id itself.
        self.assertEqual(other, {"ok": False, "error": "not found",
                                 "detail": "no result for reqid %s" % reqid})
        self.assertEqual(unknown["detail"], "no result for reqid fedcba9876543210")


if __name__ == "__main__":
    harness.main()
