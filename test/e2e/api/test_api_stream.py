"""POST /run with "stream": true (issue 15) through ctrl-exec-api and curl -N: NDJSON events,
the same as Server-Sent Events with Accept: text/event-stream, batches in the stream, the run
store's record of the final result, and the refusals that stay plain JSON answers. Every event
and the final object are checked against the API's live OpenAPI document.

As in the CLI's test, "before the script ends" is shown by construction: the `gated` script
waits for a file that the test creates only once curl has delivered the first line."""
import fcntl
import json
import os
import select
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import apifix  # noqa: E402
import apischema  # noqa: E402
import displib  # noqa: E402
from apifix import harness  # noqa: E402
from test_follow import SCRIPTS  # noqa: E402

EVENT_SCHEMAS = {"output": "RunOutputEvent", "result": "RunResultEvent", "batch": "RunBatchEvent"}


def check_event(testcase, ev):
    """An event against its component schema; the final object against the 200 answer."""
    doc = apifix.openapi_document()
    name = EVENT_SCHEMAS.get(ev.get("event"))
    if name:
        apischema.validate({"$ref": "#/components/schemas/" + name}, ev, doc)
    else:
        apifix.check("POST", "/run", 200, json.dumps(ev))


class Curl:
    """curl -N on POST /run; reads the head, then the body as it arrives."""

    def __init__(self, testcase, port, body, accept=None, headers=()):
        cmd = ["curl", "-N", "-sS", "-D", "/dev/stderr", "--max-time", "60", "-X", "POST",
               "-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        if accept:
            cmd += ["-H", "Accept: " + accept]
        for h in headers:
            cmd += ["-H", h]
        cmd.append(apifix.url(port, "/run"))
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        testcase.addCleanup(lambda: self.p.poll() is None and self.p.kill())

    def chunks(self, timeout=60):
        fd = self.p.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                self.p.kill()
                raise AssertionError("no data within %ss" % timeout)
            data = os.read(fd, 65536)
            if not data:
                return
            yield data

    def finish(self):
        head = self.p.stderr.read().decode()
        rc = self.p.wait(30)
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, head


def ndjson(curl, on_event=None):
    events, buf = [], b""
    for data in curl.chunks():
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            ev = json.loads(line)
            events.append(ev)
            if on_event:
                on_event(ev)
    if buf.strip():
        events.append(json.loads(buf))
    return events


def sse(curl, on_event=None):
    """[(event name, parsed data)] from a text/event-stream body."""
    out, buf = [], b""
    for data in curl.chunks():
        buf += data
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n"))
            item = (fields[b"event"].decode(), json.loads(fields[b"data"]))
            out.append(item)
            if on_event:
                on_event(item[1])
    if buf.strip():
        raise AssertionError("an unfinished event at the end: %r" % buf)
    return out


class ApiStream(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scope = harness.TestCase("run")
        cls.scope.setUp()
        cls.port = harness.free_port()
        cls.fleet = displib.Fleet(cls.scope, n=2, scripts=SCRIPTS,
                                  dispatcher_extra="api_bind = 127.0.0.1\napi_port = %d\n"
                                  "api_auth_default = allow\n" % cls.port,
                                  agent_extra="script_output_limit = 65536\n")
        cls.a1, cls.a2 = cls.fleet.names()
        cls.api = apifix.start_api(cls.scope.root, cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.scope.doCleanups()

    def gate(self):
        path = os.path.join(self.fleet.disp.dir, "gate-%s" % self.id().split(".")[-1])
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))

        def on_event(ev):
            if ev.get("event") == "output" and ev["data"] == "one\n":
                open(path, "w").close()
        return path, on_event

    def test_ndjson_events_come_as_the_script_runs(self):
        gate, on_event = self.gate()
        c = Curl(self, self.port, {"hosts": [self.a1], "script": "gated", "args": [gate],
                                   "stream": True})
        events = ndjson(c, on_event)
        rc, head = c.finish()
        self.assertEqual(rc, 0, head)
        self.assertRegex(head, r"^HTTP/1\.[01] 200 ")
        self.assertIn("Content-Type: application/x-ndjson", head)
        self.assertNotIn("Content-Length", head)
        for ev in events:
            check_event(self, ev)
        self.assertEqual([e.get("event") for e in events], ["output", "output", "result", None])
        self.assertEqual([e["data"] for e in events[:2]], ["one\n", "two\n"])
        self.assertLessEqual(events[0]["t"], events[1]["t"])
        final = events[-1]
        self.assertIs(final["ok"], True)
        self.assertEqual(final["results"][0]["stdout"], "one\ntwo\n")
        self.assertEqual(events[2]["result"], final["results"][0])
        # The run store has the final result, as for any run.
        st, text, _ = apifix.curl(apifix.url(self.port, "/status/" + final["reqid"]))
        self.assertEqual(st, 200, text)
        rec = json.loads(text)
        self.assertEqual(rec["results"][0]["stdout"], "one\ntwo\n")

    def test_server_sent_events(self):
        gate, on_event = self.gate()
        c = Curl(self, self.port, {"hosts": [self.a1, self.a2], "script": "gated",
                                   "args": [gate], "stream": True},
                 accept="text/event-stream")
        events = sse(c, on_event)
        rc, head = c.finish()
        self.assertEqual(rc, 0, head)
        self.assertIn("Content-Type: text/event-stream", head)
        names = [n for n, _ in events]
        self.assertEqual(names[-1], "summary")
        self.assertEqual(names.count("result"), 2)
        self.assertEqual(names.count("output"), 4)
        for name, data in events:
            check_event(self, data)
            if name != "summary":
                self.assertEqual(data["event"], name)
        for host in (self.a1, self.a2):
            lines = [d["data"] for n, d in events if n == "output" and d["host"] == host]
            self.assertEqual(lines, ["one\n", "two\n"])
        self.assertEqual(len(events[-1][1]["results"]), 2)

    def test_batches_in_the_stream(self):
        c = Curl(self, self.port, {"hosts": [self.a1, self.a2], "script": "noop", "batch": 1,
                                   "stream": True})
        events = ndjson(c)
        rc, head = c.finish()
        self.assertEqual(rc, 0, head)
        for ev in events:
            check_event(self, ev)
        seen = [(e.get("event"), e.get("host") or (e.get("batch") or {}).get("batch"))
                for e in events]
        self.assertEqual(seen, [("output", self.a1), ("result", self.a1), ("batch", 1),
                                ("output", self.a2), ("result", self.a2), ("batch", 2),
                                (None, None)])
        self.assertEqual(len(events[-1]["batches"]), 2)

    def test_the_cap_holds_and_the_result_says_truncated(self):
        c = Curl(self, self.port, {"hosts": [self.a1], "script": "flood", "stream": True})
        events = ndjson(c)
        c.finish()
        out = "".join(e["data"] for e in events
                      if e.get("event") == "output" and e["stream"] == "stdout")
        self.assertEqual(len(out), 65536)
        self.assertIs(events[-1]["results"][0]["truncated"], True)

    def test_refusals_are_plain_json(self):
        cases = [
            ({"hosts": [self.a1], "script": "noop", "stream": True, "async": True}, (), 400),
            ({"hosts": [self.a1], "script": "noop", "stream": True}, ("Idempotency-Key: k1",),
             400),
            ({"hosts": ["nobody.example"], "script": "noop", "stream": True}, (), 404),
        ]
        for body, headers, code in cases:
            st, text, head = apifix.curl(apifix.url(self.port, "/run"), data=body,
                                         headers=headers)
            self.assertEqual(st, code, (body, text))
            self.assertIn("application/json", head)
            self.assertIs(json.loads(text)["ok"], False)
        # A held lock: 409, before any stream.
        fd = self.fleet.hold_lock(self.a1, "noop")
        st, text, head = apifix.curl(apifix.url(self.port, "/run"),
                                     data={"hosts": [self.a1], "script": "noop", "stream": True})
        fcntl.flock(fd, fcntl.LOCK_UN)
        self.assertEqual(st, 409, text)


if __name__ == "__main__":
    harness.main()
