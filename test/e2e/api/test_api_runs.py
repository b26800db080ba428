"""POST /run records and Idempotency-Key (issue 13, item 5): the run's record is written as
`submitted` before any agent is asked; an API killed mid-dispatch leaves records that become
`unknown` when it starts again, so that no run happens on an agent without a dispatcher record;
a request repeated with its Idempotency-Key is answered from the store and runs nothing."""
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import apifix  # noqa: E402
import displib  # noqa: E402
from apifix import harness  # noqa: E402

RUNS = "/var/lib/ctrl-exec/runs"
UNKNOWN = ("outcome unknown: the API stopped before it recorded this run's results; the script "
           "may have run on some, all or none of the hosts")


class ApiRuns(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.port = harness.free_port()
        # A long read_timeout: a stopped agent keeps its dispatch in flight until the test ends it.
        self.fleet = displib.Fleet(self, n=2, dispatcher_extra="api_bind = 127.0.0.1\n"
                                   "api_port = %d\nread_timeout = 120\n"
                                   "api_auth_default = allow\n" % self.port)
        self.api = apifix.start_api(self.root, self.port)

    def add_counting_scripts(self, names):
        """Scripts that append their first argument to <agent root>/tmp/count, on every agent."""
        for a in self.fleet.agents:
            count = a.root.path("/tmp/count")
            os.makedirs(os.path.dirname(count), exist_ok=True)
            scripts = a.root.path("/opt/ctrl-exec-scripts")
            lines = a.root.read("/etc/ctrl-exec-agent/scripts.conf")
            for n in names:
                p = os.path.join(scripts, n + ".sh")
                with open(p, "w") as f:
                    f.write("#!/bin/sh\necho \"$1\" >> '%s'\necho counted \"$1\"\n" % count)
                os.chmod(p, 0o755)
                lines += "%s = %s\n" % (n, p)
            a.root.write("/etc/ctrl-exec-agent/scripts.conf", lines)
            os.kill(a.proc.pid, signal.SIGHUP)
            harness.wait_until(lambda: "ACTION=reload" in a.log(), what="%s reload" % a.name)

    def counted(self, agent):
        path = agent.root.path("/tmp/count")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()

    def call(self, method, path, body=None, key=None, headers=(), timeout=60):
        data = None if body is None else body if isinstance(body, str) else json.dumps(body)
        headers = list(headers) + (["Idempotency-Key: " + key] if key is not None else [])
        return apifix.curl(apifix.url(self.port, path), method=method, data=data,
                           headers=headers, timeout=timeout)

    def record(self, reqid):
        return json.loads(self.root.read("%s/%s.json" % (RUNS, reqid)))


class Idempotency(ApiRuns):
    def test_a_repeat_is_answered_from_the_store_and_runs_nothing(self):
        a1 = self.fleet.agents[0]
        self.add_counting_scripts(["count"])
        run = {"hosts": [a1.name], "script": "count", "args": ["once"], "username": "alice",
               "token": "t1"}
        status, first, _ = self.call("POST", "/run", run, key="order-42")
        self.assertEqual(status, 200, first)
        doc = json.loads(first)
        self.assertEqual(doc["results"][0]["stdout"], "counted once\n")
        for _ in range(3):
            status, again, _ = self.call("POST", "/run", run, key="order-42")
            self.assertEqual((status, again), (200, first), "the same answer, byte for byte")
        self.assertEqual(self.counted(a1), ["once"], "the script ran once")
        rec = self.record(doc["reqid"])
        self.assertNotIn("status", rec, "the final record has the original's shape")
        self.assertEqual((rec["mode"], rec["complete"]), ("sync", True))

        # The same key with another request is refused; another submitter's key is its own.
        other = dict(run, args=["twice"])
        status, body, _ = self.call("POST", "/run", other, key="order-42")
        self.assertEqual(status, 422, body)
        self.assertEqual(json.loads(body), {
            "ok": False, "error": "idempotency key reused",
            "detail": "this Idempotency-Key was used for a different request (run %s)"
                      % doc["reqid"]})
        for who in ({"username": "bob"}, {"token": "t2"}):
            status, body, _ = self.call("POST", "/run", dict(run, **who), key="order-42")
            self.assertEqual(status, 200, body)
            self.assertNotEqual(json.loads(body)["reqid"], doc["reqid"])
        self.assertEqual(self.counted(a1), ["once"] * 3)
        # Without the key, every request runs.
        self.assertEqual(self.call("POST", "/run", run)[0], 200)
        self.assertEqual(len(self.counted(a1)), 4)
        # The token is not stored in the index.
        index = self.root.path(RUNS + "/.idempotency")
        for name in os.listdir(index):
            with open(os.path.join(index, name)) as f:
                self.assertNotIn("t1", json.load(f)["request"])

    def test_async_repeat(self):
        a1 = self.fleet.agents[0]
        self.add_counting_scripts(["count"])
        run = {"hosts": [a1.name], "script": "count", "args": ["bg"], "async": True}
        status, first, _ = self.call("POST", "/run", run, key="job-1")
        self.assertEqual(status, 202, first)
        reqid = json.loads(first)["reqid"]

        def done():
            status, body, _ = self.call("GET", "/status/" + reqid)
            return json.loads(body) if json.loads(body).get("complete") else None
        rec = harness.wait_until(done, 20, what="the async run to complete")
        self.assertEqual(rec["hosts"][a1.name]["status"], "done")
        self.assertEqual(self.call("POST", "/run", run, key="job-1")[:2], (202, first))
        self.assertEqual(self.counted(a1), ["bg"])

    def test_a_repeat_while_the_first_runs_gets_its_state(self):
        a1 = self.fleet.agents[0]
        gate = a1.root.path("/tmp/go")
        os.makedirs(os.path.dirname(gate), exist_ok=True)
        p = a1.root.path("/opt/ctrl-exec-scripts/gated.sh")
        with open(p, "w") as f:
            f.write("#!/bin/sh\ni=0\nwhile [ ! -e '%s' ] && [ $i -lt 600 ]; do sleep 0.05; "
                    "i=$((i+1)); done\necho gated\n" % gate)
        os.chmod(p, 0o755)
        a1.root.write("/etc/ctrl-exec-agent/scripts.conf",
                      a1.root.read("/etc/ctrl-exec-agent/scripts.conf") + "gated = %s\n" % p)
        os.kill(a1.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: "ACTION=reload" in a1.log(), what="reload")
        run = {"hosts": [a1.name], "script": "gated"}
        answers = []
        t = threading.Thread(target=lambda: answers.append(self.call("POST", "/run", run,
                                                                     key="slow")))
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(lambda: open(gate, "w").close())

        def submitted():
            for name in os.listdir(self.root.path(RUNS)) if os.path.isdir(
                    self.root.path(RUNS)) else []:
                if name.endswith(".json"):
                    rec = json.loads(self.root.read(RUNS + "/" + name))
                    if rec.get("status") == "submitted":
                        return rec
            return None
        rec = harness.wait_until(submitted, 15, what="the submitted record")
        self.assertEqual((rec["mode"], rec["hosts"], rec["results"], rec["complete"]),
                         ("sync", [a1.name], [], False))
        status, body, _ = self.call("GET", "/status/" + rec["reqid"])
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual((doc["status"], doc["complete"]), ("submitted", False))
        self.assertNotIn("api", doc)
        status, body, _ = self.call("POST", "/run", run, key="slow")
        self.assertEqual((status, json.loads(body)), (202, {
            "ok": True, "reqid": rec["reqid"], "mode": "sync", "status": "submitted"}))
        open(gate, "w").close()
        t.join()
        status, first, _ = answers[0]
        self.assertEqual(status, 200, first)
        self.assertEqual(json.loads(first)["results"][0]["stdout"], "gated\n")
        self.assertEqual(self.call("POST", "/run", run, key="slow")[:2], (200, first))

    def test_bad_keys(self):
        run = {"hosts": [self.fleet.names()[0]], "script": "noop"}
        detail = "Idempotency-Key must be 1 to 128 printable ASCII characters"
        for key in ("", "k" * 129, "caf\u00e9", "tab\there"):
            # curl sends an empty header for "Name;".
            header = "Idempotency-Key: " + key if key else "Idempotency-Key;"
            status, body, _ = self.call("POST", "/run", run, headers=[header])
            self.assertEqual((status, json.loads(body)),
                             (400, {"ok": False, "error": "bad request", "detail": detail}), key)
        records = [f for f in os.listdir(self.root.path(RUNS)) if f.endswith(".json")]
        self.assertEqual(records, [], "nothing was run or stored")
        status, body, _ = self.call("POST", "/run", run, key="k" * 128)
        self.assertEqual(status, 200, body)
        # The API process's lock in the run store lives as long as the process.
        locks = self.root.path(RUNS + "/.api")
        self.assertEqual(len(os.listdir(locks)), 1)
        self.assertEqual(self.api.stop(), 0)
        self.assertEqual(os.listdir(locks), [])


class KilledMidBurst(ApiRuns):
    def test_every_record_resolves_and_retries_run_nothing(self):
        a1, a2 = self.fleet.agents
        names = ["count%02d" % i for i in range(20)]
        self.add_counting_scripts(names)
        # Half of the runs go to a1 alone and are answered; the other half also go to a2,
        # which is stopped, so their dispatch is in flight when the API is killed. a1 has run
        # those already: the original left them without any record.
        os.kill(a2.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: a2.proc and os.kill(a2.proc.pid, signal.SIGCONT))
        runs = {}
        for i, n in enumerate(names):
            hosts = [a1.name] if i % 2 == 0 else [a1.name, a2.name]
            runs[n] = {"hosts": hosts, "script": n, "args": [n], "async": True}
        answers = {}

        def submit(n):
            answers[n] = self.call("POST", "/run", runs[n], key="burst-" + n, timeout=120)
        threads = [threading.Thread(target=submit, args=(n,)) for n in names]
        for t in threads:
            t.start()
        quick = [n for i, n in enumerate(names) if i % 2 == 0]
        stuck = [n for i, n in enumerate(names) if i % 2 == 1]
        harness.wait_until(lambda: all(n in answers for n in quick), 30,
                           what="the a1-only runs to be answered")
        harness.wait_until(lambda: set(self.counted(a1)) == set(names), 30,
                           what="every run to reach a1")
        self.assertEqual(set(answers), set(quick), "the others are still in flight")
        self.api.signal(signal.SIGKILL)
        self.api.wait()
        for t in threads:
            t.join()
        for n in quick:
            self.assertEqual(answers[n][0], 202, answers[n])
        for n in stuck:
            self.assertEqual(answers[n][0], 0, "no answer: the API died")
        left = [json.loads(self.root.read(RUNS + "/" + f))
                for f in os.listdir(self.root.path(RUNS)) if f.endswith(".json")]
        self.assertEqual(sorted(r["script"] for r in left if r.get("status") == "submitted"),
                         stuck)

        # Every run a1 started has a dispatcher record.
        agent_reqids = set()
        for line in a1.log().splitlines():
            if "ACTION=run-async " in line:
                agent_reqids.add(line.split("REQID=")[1].split()[0])
        self.assertEqual(len(agent_reqids), 20)
        stored = {f[:-5] for f in os.listdir(self.root.path(RUNS)) if f.endswith(".json")}
        self.assertEqual(agent_reqids - stored, set())

        self.api = apifix.start_api(self.root, self.port)
        os.kill(a2.proc.pid, signal.SIGCONT)

        def resolved():
            out = {}
            for reqid in agent_reqids:
                status, body, _ = self.call("GET", "/status/" + reqid)
                doc = json.loads(body)
                if status != 200 or doc.get("status") == "submitted" or not doc["complete"]:
                    return None
                out[doc["script"]] = doc
            return out
        docs = harness.wait_until(resolved, 20, interval=0.5, what="every record to resolve")
        for n in quick:
            self.assertNotIn("status", docs[n])
            self.assertEqual(docs[n]["hosts"][a1.name]["status"], "done")
        for n in stuck:
            d = docs[n]
            self.assertEqual((d["status"], d["error"], d["complete"], d["pending"]),
                             ("unknown", UNKNOWN, True, []))
            self.assertEqual(d["hosts"], {a1.name: {"status": "unknown"},
                                          a2.name: {"status": "unknown"}})
        self.assertEqual(self.api.err().count("ACTION=api-run-unknown "), len(stuck))
        # The killed process's lock file was removed at the start; the new one's is there.
        harness.wait_until(lambda: len(os.listdir(self.root.path(RUNS + "/.api"))) == 1, 10,
                           what="the dead API's lock file to go")

        # Retries with the same keys run nothing: the stored answer, or the run's state.
        for n in names:
            status, body, _ = self.call("POST", "/run", runs[n], key="burst-" + n)
            if n in quick:
                self.assertEqual((status, body), answers[n][:2])
            else:
                self.assertEqual((status, json.loads(body)), (200, {
                    "ok": True, "reqid": docs[n]["reqid"], "mode": "async", "status": "unknown",
                    "error": UNKNOWN}))
        self.assertEqual(sorted(self.counted(a1)), names, "each ran once on a1")
        self.assertEqual(self.counted(a2), [], "the killed dispatches never reached a2")

        # The CLI reads the same store: unknown is a failure for `wait`.
        reqid = docs[stuck[0]]["reqid"]
        r = self.fleet.ced("wait", reqid, "--timeout", "0")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("[UNKNOWN] " + UNKNOWN, r.out)
        self.assertIn("==> %s  [UNKNOWN]" % a2.name, r.out)


if __name__ == "__main__":
    harness.main()
