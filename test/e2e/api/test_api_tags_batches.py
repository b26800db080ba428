"""POST /run and /ping by tags, in batches (issue 14), through ctrl-exec-api in front of six
real, tagged agents (tagfleet.TAGS):

    a1 web prod   a2 web staging   a3 web prod   a4 db prod   a5 db staging   a6 cache prod
    (and fleet=test on all six)

`tags` beside or instead of `hosts`, `batch` (N or "N%"), `batch_wait`, `max_failures` (K or
"K%"); a selector that matches nothing (404), bad fields (400 naming the field), the per-batch
auth hook call with ENVEXEC_TAGS, one run record per batch, and the 500-host limit. Every
response is checked against the API's live OpenAPI document (apifix.curl)."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import apifix  # noqa: E402
import displib  # noqa: E402
import pairlib  # noqa: E402  (on the path through displib)
import tagfleet  # noqa: E402
from apifix import harness  # noqa: E402
from tagfleet import TAGS  # noqa: E402


def no_match(selector):
    return {"ok": False, "error": "unknown agent",
            "detail": "no registered agent matches tags: " + selector}


class Api:
    """Requests to the API of a class (self.port), bodies as JSON."""

    def call(self, method, path, body=None, headers=()):
        data = None if body is None else body if isinstance(body, str) else json.dumps(body)
        status, text, _ = apifix.curl(apifix.url(self.port, path), method=method, data=data,
                                      headers=headers, timeout=120)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def logged(self, method, path, body=None, headers=()):
        """call(), plus the API's log lines written meanwhile."""
        before = len(self.api.err())
        st, doc = self.call(method, path, body, headers)
        # A line written as the response goes out may land just after it: read the log once
        # it has stopped growing (a bounded wait, not an assertion).
        seen = [None]

        def settled():
            text = self.api.err()
            done = text == seen[0] and (text.endswith("\n") or not text)
            seen[0] = text
            return done
        harness.wait_until(settled, timeout=5, interval=0.15, what="the API log to settle")
        return st, doc, seen[0][before:]


class ApiTagsBatches(tagfleet.RolloutChecks, Api, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        scope = tagfleet.ClassScope(cls)
        cls.port = harness.free_port()
        cls.tf = tagfleet.TaggedFleet(scope, "api_bind = 127.0.0.1\napi_port = %d\n" % cls.port)
        cls.api = apifix.start_api(scope.root, cls.port)

    def setUp(self):
        for i, tags in TAGS.items():
            self.assertEqual(self.tf.registry_tags(self.tf.names(i)[0]), tags)

    def n(self, *indexes):
        return self.tf.names(*indexes)

    def record(self, reqid):
        return json.loads(self.tf.disp.read("/var/lib/ctrl-exec/runs/%s.json" % reqid))

    # --- selection ---

    def test_select_by_tags(self):
        a1, a2, a3, a4, a5 = self.n(1, 2, 3, 4, 5)
        st, doc = self.call("POST", "/run", {"tags": {"role": "web"}, "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(sorted(doc), ["ok", "reqid", "results"])  # no batches without batch
        self.assertEqual(sorted(x["host"] for x in doc["results"]), [a1, a2, a3])
        self.assertEqual(self.record(doc["reqid"])["hosts"], [a1, a2, a3])
        # Two pairs: AND.
        st, doc = self.call("POST", "/run", {"tags": {"role": "web", "env": "prod"},
                                              "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(self.record(doc["reqid"])["hosts"], [a1, a3])
        # With hosts: those first, as given, then the matches by name, each once.
        st, doc = self.call("POST", "/run", {"hosts": [a5, a1], "tags": {"role": "web"},
                                              "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(self.record(doc["reqid"])["hosts"], [a5, a1, a2, a3])
        self.assertEqual(len(doc["results"]), 4)
        st, doc = self.call("POST", "/ping", {"tags": {"role": "db"}})
        self.assertEqual(st, 200, doc)
        self.assertEqual(sorted(doc), ["ok", "results"])
        self.assertEqual(sorted(x["host"] for x in doc["results"]), [a4, a5])
        self.assertEqual({x["status"] for x in doc["results"]}, {"ok"})
        # Batches of one show the order of a ping's selection.
        st, doc = self.call("POST", "/ping", {"hosts": [a3], "tags": {"env": "prod"},
                                               "batch": 1})
        self.assertEqual(st, 200, doc)
        self.assertEqual([b["hosts"] for b in doc["batches"]],
                         [[a3]] + [[x] for x in self.n(1, 4, 6)])

    def test_a_selector_that_matches_nothing(self):
        a1 = self.n(1)[0]
        for path, body in (("/run", {"tags": {"role": "nosuch"}, "script": "noop"}),
                           ("/run", {"hosts": [a1], "tags": {"role": "nosuch"},
                                     "script": "noop"}),
                           ("/run", {"tags": {"role": "nosuch"}, "script": "noop",
                                     "batch": 1}),
                           ("/ping", {"tags": {"role": "nosuch"}}),
                           ("/ping", {"hosts": [a1], "tags": {"role": "nosuch"}})):
            with self.subTest(path=path, body=body):
                st, doc, log = self.logged("POST", path, body)
                self.assertEqual((st, doc), (404, no_match("role=nosuch")))
                self.assertEqual(tagfleet.log_fields(log, "dispatch"), [])
                self.assertEqual(tagfleet.log_fields(log, "ping"), [])
        # Each pair matches some agent, both together none.
        st, doc = self.call("POST", "/run", {"tags": {"role": "db", "env": "nosuch"},
                                              "script": "noop"})
        self.assertEqual((st, doc), (404, no_match("role=db,env=nosuch")))

    def test_bad_fields(self):
        a1 = self.n(1)[0]
        run = {"hosts": [a1], "script": "noop"}
        rows = [
            ("/run", {"tags": "role=web", "script": "noop"}, "tags"),
            ("/run", {"tags": ["role=web"], "script": "noop"}, "tags"),
            ("/run", {"tags": {"role": 1}, "script": "noop"}, "tags"),
            ("/run", {"tags": {"role": {"x": "y"}}, "script": "noop"}, "tags"),
            ("/ping", {"tags": "role=web"}, "tags"),
            ("/run", dict(run, batch=0), "batch"),
            ("/run", dict(run, batch=-1), "batch"),
            ("/run", dict(run, batch="0%"), "batch"),
            ("/run", dict(run, batch="101%"), "batch"),
            ("/run", dict(run, batch="x"), "batch"),
            ("/run", dict(run, batch=1.5), "batch"),
            ("/run", dict(run, batch=True), "batch"),
            ("/ping", {"hosts": [a1], "batch": 0}, "batch"),
            ("/run", dict(run, batch=1, batch_wait=-1), "batch_wait"),
            ("/run", dict(run, batch=1, batch_wait=3601), "batch_wait"),
            ("/run", dict(run, batch=1, batch_wait="soon"), "batch_wait"),
            ("/run", dict(run, batch=1, max_failures=-1), "max_failures"),
            ("/run", dict(run, batch=1, max_failures="x%"), "max_failures"),
            ("/run", dict(run, batch=1, max_failures="101%"), "max_failures"),
            ("/run", dict(run, batch=1, max_failures=1.5), "max_failures"),
            # Without batch, batch_wait and max_failures mean nothing.
            ("/run", dict(run, batch_wait=1), "batch_wait"),
            ("/run", dict(run, max_failures=0), "max_failures"),
            ("/ping", {"hosts": [a1], "max_failures": 0}, "max_failures"),
        ]
        for path, body, field in rows:
            with self.subTest(path=path, body=body):
                st, doc, log = self.logged("POST", path, body)
                self.assertEqual(st, 400, doc)
                self.assertEqual((doc["ok"], doc["error"]), (False, "bad request"), doc)
                self.assertIn(field, doc["detail"])
                self.assertEqual(tagfleet.log_fields(log, "dispatch"), [])
                self.assertEqual(tagfleet.log_fields(log, "ping"), [])
        # A batch over the limit of one dispatch.
        st, doc = self.call("POST", "/run", dict(run, batch=501))
        self.assertEqual(st, 400, doc)
        self.assertEqual(doc["error"], "bad request", doc)
        self.assertTrue("batch" in doc["detail"] or "too many hosts (max 500)" in doc["detail"],
                        doc)
        # An Idempotency-Key cannot name a rollout of several runs.
        st, doc, log = self.logged("POST", "/run", dict(run, batch=1),
                                   headers=["Idempotency-Key: k-tags-1"])
        self.assertEqual(st, 400, doc)
        self.assertEqual(doc["error"], "bad request", doc)
        self.assertEqual(tagfleet.log_fields(log, "dispatch"), [])

    # --- batches ---

    def test_a_batched_run_stops_after_max_failures(self):
        a = self.n()
        b3 = [a[0:2], a[2:4], a[4:6]]
        self.tf.failing(self, 2, 4)
        body = {"tags": {"fleet": "test"}, "script": "flaky", "batch": 2, "max_failures": 1}
        st, doc, log = self.logged("POST", "/run", body)
        self.assertEqual(st, 200, doc)
        got = self.assert_rollout(log, doc, b3, ["done", "done", "skipped"], [1, 1, 0], True,
                                  ok=True)
        res = displib.by_host(doc["results"])
        self.assertEqual([res[h]["exit"] for h in a[0:4]], [0, 3, 0, 3])
        # Each batch that ran is a run of its own: its record, its /status.
        for b in got[:2]:
            rec = self.record(b["reqid"])
            self.assertEqual(rec["hosts"], b["hosts"])
            st, status = self.call("GET", "/status/" + b["reqid"])
            self.assertEqual(st, 200, status)
            self.assertEqual((status["mode"], status["complete"]), ("sync", True))
            self.assertEqual(sorted(x["host"] for x in status["results"]), sorted(b["hosts"]))
        dispatch = tagfleet.log_fields(log, "dispatch")
        self.assertEqual([(f["HOSTS"].split(","), f["REQID"]) for f in dispatch],
                         [(b["hosts"], b["reqid"]) for b in got[:2]])
        # Percentages: batches of 3; floor(16% of 6) = 0 failures tolerated.
        st, doc, log = self.logged("POST", "/run", {"tags": {"fleet": "test"}, "script": "flaky",
                                                    "batch": "50%", "max_failures": "16%"})
        self.assertEqual(st, 200, doc)
        self.assert_rollout(log, doc, [a[0:3], a[3:6]], ["done", "skipped"], [1, 0], True,
                            ok=True)
        # No max_failures: every batch runs.
        st, doc, log = self.logged("POST", "/run", {"tags": {"fleet": "test"}, "script": "flaky",
                                                    "batch": "50%"})
        self.assertEqual(st, 200, doc)
        self.assert_rollout(log, doc, [a[0:3], a[3:6]], ["done", "done"], [1, 1], False,
                            ok=True)
        # As many failures as tolerated (floor(34% of 6) = 2): no stop.
        st, doc, log = self.logged("POST", "/run", {"tags": {"fleet": "test"}, "script": "flaky",
                                                    "batch": 2, "max_failures": "34%"})
        self.assertEqual(st, 200, doc)
        self.assert_rollout(log, doc, b3, ["done"] * 3, [1, 1, 0], False, ok=True)

    def test_a_batched_async_run(self):
        a = self.n()
        st, doc, log = self.logged("POST", "/run", {"tags": {"role": "web"}, "script": "sleeper",
                                                    "args": ["0"], "batch": 2, "async": True})
        self.assertEqual(st, 202, doc)
        got = self.assert_rollout(log, doc, [a[0:2], a[2:3]], ["done", "done"], [0, 0], False,
                                  ok=True)
        self.assertEqual({x["status"] for x in doc["results"]}, {"accepted"})
        for b in got:
            def complete(reqid=b["reqid"]):
                s, d = self.call("GET", "/status/" + reqid)
                self.assertEqual(s, 200, d)
                return d if d["complete"] else None
            done = harness.wait_until(complete, timeout=60, interval=0.3,
                                      what="batch %d to complete" % b["batch"])
            self.assertEqual(sorted(done["hosts"]), sorted(b["hosts"]))
        # An async batch fails when a host did not accept it.
        self.tf.stopped(self, 1)
        st, doc, log = self.logged("POST", "/run", {"tags": {"role": "web"}, "script": "noop",
                                                    "batch": 2, "max_failures": 0,
                                                    "async": True})
        self.assertEqual(st, 202, doc)
        self.assert_rollout(log, doc, [a[0:2], a[2:3]], ["done", "skipped"], [1, 0], True,
                            ok=True)

    def test_batch_wait(self):
        st, doc, log = self.logged("POST", "/run", {"tags": {"role": "web"}, "script": "noop",
                                                    "batch": 1, "batch_wait": 1.2})
        self.assertEqual(st, 200, doc)
        self.assert_rollout(log, doc, [[x] for x in self.n(1, 2, 3)], ["done"] * 3, [0] * 3,
                            False, ok=True)
        self.assert_waited(log, doc, 1.2, 3)
        st, doc, log = self.logged("POST", "/ping", {"tags": {"role": "db"}, "batch": "50%",
                                                     "batch_wait": 1})
        self.assertEqual(st, 200, doc)
        self.assert_waited(log, doc, 1.0, 2)

    def test_a_batched_ping_stops_after_max_failures(self):
        a = self.n()
        self.tf.stopped(self, 2)
        st, doc, log = self.logged("POST", "/ping", {"tags": {"fleet": "test"}, "batch": 2,
                                                     "max_failures": 0})
        self.assertEqual(st, 200, doc)
        self.assert_rollout(log, doc, [a[0:2], a[2:4], a[4:6]], ["done", "skipped", "skipped"],
                            [1, 0, 0], True, ok=True)
        self.assertEqual(displib.by_host(doc["results"])[a[1]]["state"], "unreachable")

    # --- the auth hook ---

    def test_the_hook_is_asked_once_per_batch(self):
        a1, a3, a5 = self.n(1, 3, 5)
        self.tf.clear_hook_calls()
        st, doc = self.call("POST", "/run", {"hosts": [a5], "tags": {"env": "prod", "role": "web"},
                                              "script": "noop", "batch": 2})
        self.assertEqual(st, 200, doc)
        self.assertIn("batches", doc)
        self.assertEqual([b["hosts"] for b in doc["batches"]], [[a5, a1], [a3]])
        calls = self.tf.hook_calls("run")
        self.assertEqual(len(calls), 2, calls)
        for call, b in zip(calls, doc["batches"]):
            self.assertEqual(call["ENVEXEC_HOSTS"], ",".join(b["hosts"]))
            self.assertEqual(call["ENVEXEC_TAGS"], "env=prod,role=web")  # as given
            self.assertEqual(call["stdin"]["hosts"], b["hosts"])
            self.assertEqual(call["stdin"]["tags"], {"env": "prod", "role": "web"})
        self.tf.clear_hook_calls()
        st, doc = self.call("POST", "/ping", {"tags": {"role": "db"}})
        self.assertEqual(st, 200, doc)
        calls = self.tf.hook_calls("ping")
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual((calls[0]["ENVEXEC_HOSTS"], calls[0]["ENVEXEC_TAGS"]),
                         (",".join(self.n(4, 5)), "role=db"))
        self.tf.clear_hook_calls()
        st, doc = self.call("POST", "/run", {"hosts": [a1], "script": "noop"})
        self.assertEqual(st, 200, doc)
        calls = self.tf.hook_calls("run")
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0].get("ENVEXEC_TAGS", ""), "")
        self.assertNotIn("tags", calls[0]["stdin"])

    # --- the document ---

    def test_the_documents_describe_the_new_fields(self):
        for path in ("/openapi.json", "/openapi-live.json"):
            st, spec = self.call("GET", path)
            self.assertEqual(st, 200)
            schemas = spec["components"]["schemas"]
            for name, fields in (("RunRequest", ("tags", "batch", "batch_wait", "max_failures")),
                                 ("PingRequest", ("tags", "batch", "batch_wait",
                                                  "max_failures"))):
                for f in fields:
                    self.assertIn(f, schemas[name]["properties"], (path, name))
                # hosts alone is no longer required: tags may stand for it.
                self.assertNotIn("hosts", schemas[name].get("required", []), (path, name))


class TooManyHosts(Api, unittest.TestCase):
    """501 registered agents (records only: nothing is contacted) behind an allow-all API."""

    @classmethod
    def setUpClass(cls):
        scope = tagfleet.ClassScope(cls)
        root = scope.root
        cls.port = harness.free_port()
        pairlib.setup_dispatcher(root, "api_bind = 127.0.0.1\napi_port = %d\n"
                                 "api_auth_default = allow\n" % cls.port)
        port = harness.free_port()  # nobody listens there
        cls.names = ["h%03d.bulk.test" % i for i in range(501)]
        for n in cls.names:
            root.write("/var/lib/ctrl-exec/agents/%s.json" % n, json.dumps({
                "hostname": n, "ip": "127.0.0.1", "port": port, "lookup_by": "ip",
                "paired": "2026-01-01T00:00:00Z", "expiry": "unknown", "reqid": "0" * 16,
                "tags": {"bulk": "yes"}}))
        cls.api = apifix.start_api(root, cls.port)

    def test_more_than_500_need_batches(self):
        for path, body in (("/run", {"tags": {"bulk": "yes"}, "script": "noop"}),
                           ("/ping", {"tags": {"bulk": "yes"}}),
                           ("/run", {"hosts": self.names[:10], "tags": {"bulk": "yes"},
                                     "script": "noop", "batch": 501})):
            with self.subTest(path=path, body=body):
                st, doc, log = self.logged("POST", path, body)
                self.assertEqual(st, 400, doc)
                self.assertEqual(doc["error"], "bad request", doc)
                if "batch" in body:
                    # A bad field: named by the detail (the API's fields have no fixed text).
                    self.assertIn("batch", doc["detail"])
                else:
                    self.assertIn("too many hosts (max 500)", doc["detail"])
                self.assertEqual(tagfleet.log_fields(log, "dispatch"), [])
        # In batches, 501 are fine: the first batch fails (nobody listens), the rest skipped.
        st, doc = self.call("POST", "/run", {"tags": {"bulk": "yes"}, "script": "noop",
                                             "batch": 100, "max_failures": 0})
        self.assertEqual(st, 200, doc)
        self.assertEqual([len(b["hosts"]) for b in doc["batches"]], [100] * 5 + [1])
        self.assertEqual([b["state"] for b in doc["batches"]], ["done"] + ["skipped"] * 5)
        self.assertEqual(len(doc["results"]), 501)


if __name__ == "__main__":
    harness.main()
