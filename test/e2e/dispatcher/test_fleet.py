"""`ced run` and `ced ping` across a fleet of five real agents paired with a real dispatcher
(dispatcher-and-api §4.3, §4.6, §5): every host at once; then one agent stopped, one hanging,
one denying through its hook and one refusing our serial, each with its exit code, JSON shape,
per-host state and log lines."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402


class Fleet(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=5, dispatcher_extra="read_timeout = 3\n")

    def test_run_and_ping_everywhere(self):
        names = self.fleet.names()
        r, doc = self.fleet.ced_json("ping", *names)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(doc["ok"], 1)
        results = displib.by_host(doc["results"])
        self.assertEqual(sorted(results), sorted(names))
        for name, res in results.items():
            self.assertEqual(res["status"], "ok", res)
            self.assertEqual(res["state"], "ok")
            self.assertEqual(res["version"], "0.12.3")
            self.assertRegex(res["rtt"], r"^\d+ms$")
            self.assertEqual(res["expiry"], self.fleet.registry(name)["expiry"])
            self.assertIs(res["staged"], False)
            self.assertNotIn("reported_hostname", res)  # the agent reports its registry name
        # One reqid for the whole ping, shared with the log lines.
        reqids = {res["reqid"] for res in results.values()}
        self.assertEqual(len(reqids), 1)
        lines = self.fleet.log_lines("ping", r.err)
        self.assertEqual(len(lines), 5)
        reqid = next(iter(reqids))
        for line in lines:
            self.assertRegex(line, r"^ACTION=ping REQID=%s RESULT=ok RTT=\d+ms "
                                   r"TARGET=127\.0\.0\.1:\d+ TLS=(full|resumed)$" % reqid)
        # The ping also asked for capabilities: the script names are cached for the shell
        # completion, one line per agent (ours).
        cache = self.fleet.disp.read("/var/lib/ctrl-exec/scripts.cache").splitlines()
        self.assertEqual(cache, ["%s %s" % (n, " ".join(sorted(displib.SCRIPTS)))
                                 for n in sorted(names)])

        r = self.fleet.ced("run", *names, "noop")
        self.assertEqual(r.rc, 0, r)
        blocks = [l for l in r.out.splitlines() if l.startswith("==> ")]
        self.assertEqual(len(blocks), 5)
        for line in blocks:
            self.assertRegex(line, r"^==> a\d\.fleet\.test  \[OK  exit:0  \d+ms  req:[0-9a-f]{16}\]$")
        self.assertEqual(r.out.count("\nok\n") + r.out.startswith("ok\n"), 5)
        reqid = blocks[0].rsplit("req:", 1)[1].rstrip("]")
        dispatch = self.fleet.log_lines("dispatch", r.err)
        self.assertEqual(len(dispatch), 1)
        self.assertIn("MODE=sync REQID=%s SCRIPT=noop" % reqid, dispatch[0])
        runs = self.fleet.log_lines("run", r.err)
        self.assertEqual(len(runs), 5)
        for line in runs:
            self.assertRegex(line, r"^ACTION=run EXIT=0 REQID=%s RTT=\d+ms SCRIPT=noop "
                                   r"TARGET=127\.0\.0\.1:\d+ TLS=(full|resumed)$" % reqid)
        # The agents logged the same reqid.
        for a in self.fleet.agents:
            harness.wait_until(lambda: reqid in a.log(), what="reqid in %s's log" % a.name)

        r, doc = self.fleet.ced_json("run", *names, "fail")
        self.assertEqual(r.rc, 1)
        for res in doc["results"]:
            self.assertEqual((res["exit"], res["stdout"], res["stderr"], res["state"]),
                             (3, "about to fail\n", "failure detail\n", "ok"))

        # A host named more than once runs once, in the place it was first named (issue 11,
        # defect 4): three names, two of them repeated, give two results and two agent runs.
        a, b = names[0], names[1]
        host = {x.name: x for x in self.fleet.agents}
        before = {n: host[n].log().count("ACTION=run ") for n in (a, b)}
        r, doc = self.fleet.ced_json("run", a, b, a, a, b, "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([res["host"] for res in doc["results"]].count(a), 1, doc)
        self.assertEqual(sorted(res["host"] for res in doc["results"]), sorted([a, b]))
        self.assertEqual(len(self.fleet.log_lines("run", r.err)), 2)
        for n in (a, b):
            harness.wait_until(lambda: host[n].log().count("ACTION=run ") > before[n],
                               what="the run in %s's log" % n)
            self.assertEqual(host[n].log().count("ACTION=run "), before[n] + 1)

    def test_failure_modes(self):
        a1, a2, a3, a4, a5 = self.fleet.agents
        # a1: stopped (unreachable).
        a1.stop()
        # a2: hanging - the process is stopped, so the kernel accepts but nobody answers.
        os.kill(a2.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: a2.proc and a2.proc.alive() and os.kill(a2.proc.pid, signal.SIGCONT))
        # a3: its auth hook denies.
        hook = a3.root.write("/etc/ctrl-exec-agent/deny-hook", "#!/bin/sh\nexit 2\n", 0o755)
        a3.stop()
        a3.write_conf("auth_hook = %s\n" % hook)
        a3.start()
        # a4: does not trust this dispatcher's serial any more.
        a4.root.write("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers", "")
        os.kill(a4.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: "ACTION=reload DISPATCHERS=0 " in a4.log(), what="a4 to reload")

        names = self.fleet.names()
        r, doc = self.fleet.ced_json("run", *names, "noop", timeout=60)
        self.assertEqual(r.rc, 1, r)
        res = displib.by_host(doc["results"])
        self.assertEqual(res[a1.name]["state"], "unreachable")
        self.assertEqual(res[a1.name]["exit"], -1)
        self.assertEqual(res[a1.name]["error"],
                         "host '127.0.0.1' did not respond on port %d - connection refused "
                         "(agent not running, or wrong port?)" % a1.port)
        self.assertEqual(res[a2.name]["state"], "timeout")
        self.assertEqual(res[a2.name]["error"],
                         "host '127.0.0.1' did not respond - connection timed out")
        self.assertEqual(res[a3.name]["state"], "denied")
        self.assertEqual(res[a3.name]["error"], "not authorised: bad credentials")
        self.assertEqual(res[a4.name]["state"], "denied")
        self.assertEqual(res[a4.name]["error"], "forbidden: serial mismatch")
        self.assertEqual((res[a5.name]["state"], res[a5.name]["exit"]), ("ok", 0))
        # Completion order: the hanging agent answers last.
        self.assertEqual(doc["results"][-1]["host"], a2.name)

        r = self.fleet.ced("run", *names, "noop", timeout=60)
        self.assertEqual(r.rc, 1)
        self.assertIn("==> %s  [FAIL  exit:-1  " % a4.name, r.out)
        self.assertIn("    ERROR: forbidden: serial mismatch\n", r.out)

        r, doc = self.fleet.ced_json("ping", *names, timeout=60)
        self.assertEqual(r.rc, 0, r)  # ping exits 0 whatever the hosts said
        res = displib.by_host(doc["results"])
        self.assertEqual({n: res[n]["state"] for n in names}, {
            a1.name: "unreachable", a2.name: "timeout", a3.name: "ok", a4.name: "denied",
            a5.name: "ok"})
        self.assertEqual(res[a4.name]["status"], "error")
        r = self.fleet.ced("ping", *names, timeout=60)
        self.assertEqual(r.rc, 0)
        row = [l for l in r.out.splitlines() if l.startswith(a4.name)][0]
        self.assertRegex(row, r"^%s +error +\d+ms +\? +\?$" % a4.name.replace(".", r"\."))

    def test_read_timeout_of_a_slow_script(self):
        a = self.fleet.agents[0]
        r, doc = self.fleet.ced_json("run", a.name, "sleeper", "--", "10", timeout=60)
        self.assertEqual(r.rc, 1)
        self.assertEqual(doc["results"][0]["error"], "read timeout after 3s")
        self.assertEqual(doc["results"][0]["state"], "timeout")


class Addressing(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=1)

    def test_unknown_agents_fail_the_whole_request(self):
        a = self.fleet.agents[0]
        for mode in (["ping"], ["run"]):
            args = mode + [a.name, "nosuch", "other:7450"] + (["noop"] if mode == ["run"] else [])
            r = self.fleet.ced(*args)
            self.assertEqual(r.rc, 2, r)
            self.assertEqual(displib.without_logs(r.err), "Error: unknown agents: nosuch, other:7450\nOnly registered "
                                    "agents can be addressed - run 'ctrl-exec-dispatcher "
                                    "list-agents' to see them.\n")
            self.assertEqual(r.out, "")
        r = self.fleet.ced("ping", "nosuchagent")
        self.assertEqual(displib.without_logs(r.err).splitlines()[0], "Error: unknown agent: nosuchagent")
        # A host too long for a lock file name of its own gets the same answer, not "Cannot lock".
        long_name = "h" * 300
        r = self.fleet.ced("run", long_name, "noop")
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(displib.without_logs(r.err).splitlines()[0],
                         "Error: unknown agent: " + long_name)

    def test_port_override_and_args_verbatim(self):
        a = self.fleet.agents[0]
        args = ["hello", "two words", 'x"y', "", "$(id)", "; rm -rf /", "`uname`", "*", "-t"]
        r, doc = self.fleet.ced_json("run", "%s:%d" % (a.name, a.port), "echo-args", "--", *args)
        self.assertEqual(r.rc, 0, r)
        res = doc["results"][0]
        self.assertEqual(res["host"], a.name)
        self.assertEqual(res["stdout"], "argc=%d\n" % len(args) +
                         "".join("[%s]\n" % x for x in args))
        # A wrong port override is refused by the network, not resolved elsewhere.
        wrong = harness.free_port()
        r, doc = self.fleet.ced_json("run", "%s:%d" % (a.name, wrong), "noop")
        self.assertEqual(r.rc, 1)
        self.assertIn("did not respond on port %d" % wrong, doc["results"][0]["error"])

    def test_usage_errors(self):
        r = self.fleet.ced("run", "onlyone")
        self.assertEqual(r.rc, 255)
        self.assertEqual(r.err, "Usage: ctrl-exec-dispatcher run <host>[:<port>] [<host>...] "
                                "<script> [-- <arg>...]\n")
        r = self.fleet.ced("run", "h", "--", "x")
        self.assertEqual((r.rc, r.err), (255, "Need at least one host and a script name\n"))
        r = self.fleet.ced("ping")
        self.assertEqual(r.err, "Usage: ctrl-exec-dispatcher ping <host>[:<port>] [<host>...]\n")
        r = self.fleet.ced("status")
        self.assertEqual(r.err, "Usage: ctrl-exec-dispatcher status <reqid>\n")
        r = self.fleet.ced("wait")
        self.assertEqual(r.err, "Usage: ctrl-exec-dispatcher wait <reqid> [--timeout <seconds>]\n")


if __name__ == "__main__":
    harness.main()
