"""The dispatcher's stateful paths against real agents: async runs with status and wait, locks,
TLS session resumption across CLI runs, agent cert renewal as a side effect of ping, and
dispatcher cert rotation with the serial broadcast and the retirement of the old serial
(dispatcher-and-api §3.3-§3.5, §4.3-§4.7, §4.16-§4.18, §5.6, §9)."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402


class Async(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=2)

    def test_submit_status_wait(self):
        a1, a2 = self.fleet.agents
        r, doc = self.fleet.ced_json("run", a1.name, a2.name, "sleeper", "--async", "--", "2")
        self.assertEqual(r.rc, 0, r)
        reqid = doc["reqid"]
        self.assertRegex(reqid, r"^[0-9a-f]{16}$")
        for res in doc["results"]:
            self.assertEqual((res["status"], res["reqid"], res["script"]),
                             ("accepted", reqid, "sleeper"))
        rec = json.loads(self.fleet.disp.read("/var/lib/ctrl-exec/runs/%s.json" % reqid))
        self.assertEqual(rec["mode"], "async")
        self.assertNotIn("submitter", rec)
        self.assertEqual(sorted(rec["pending"]), sorted([a1.name, a2.name]))
        mode = os.stat(self.fleet.disp.path("/var/lib/ctrl-exec/runs/%s.json" % reqid)).st_mode
        self.assertEqual(mode & 0o777, 0o640)

        # A second submission while the first runs is refused per host as busy.
        r2, doc2 = self.fleet.ced_json("run", a1.name, "sleeper", "--async", "--", "2")
        self.assertEqual(r2.rc, 1)
        self.assertEqual(doc2["results"][0]["status"], "busy")
        self.assertEqual(doc2["results"][0]["state"], "busy")
        self.assertEqual(doc2["results"][0]["error"], "script already running")
        r2 = self.fleet.ced("run", a1.name, "sleeper", "--async", "--", "2")
        self.assertIn("==> %s  [BUSY: script already running]" % a1.name, r2.out)
        self.assertIn("Check progress with: ctrl-exec-dispatcher status ", r2.out)

        st = self.fleet.ced("status", reqid)
        self.assertEqual(st.rc, 0, st)
        self.assertIn("Request %s  (script: sleeper)  [PENDING]" % reqid, st.out)
        self.assertRegex(st.out, r"==> %s  \[(running|accepted)\]" % re.escape(a1.name))

        w = self.fleet.ced("wait", reqid, "--timeout", "30")
        self.assertEqual(w.rc, 0, w)
        self.assertIn("Request %s  (script: sleeper)  [COMPLETE]" % reqid, w.out)
        self.assertIn("==> %s  [done  exit:0]\nslept\n" % a1.name, w.out)
        self.assertIn("==> %s  [done  exit:0]\nslept\n" % a2.name, w.out)
        st, sdoc = self.fleet.ced_json("status", reqid)
        self.assertEqual(st.rc, 0)
        self.assertEqual(sdoc["ok"], 1)
        self.assertIs(sdoc["complete"], True)
        self.assertEqual(sdoc["pending"], [])
        self.assertEqual(sdoc["hosts"][a1.name]["stdout"], "slept\n")
        result_lines = self.fleet.log_lines("result", w.err)
        self.assertTrue(result_lines)

    def test_wait_times_out_and_unknown_reqids(self):
        a1 = self.fleet.agents[0]
        r, doc = self.fleet.ced_json("run", a1.name, "sleeper", "--async", "--", "30")
        self.assertEqual(r.rc, 0, r)
        t0 = time.monotonic()
        w = self.fleet.ced("wait", doc["reqid"], "--timeout", "2")
        self.assertEqual(w.rc, 2, w)
        self.assertIn("[PENDING]", w.out)
        self.assertLess(time.monotonic() - t0, 15)
        st = self.fleet.ced("status", "deadbeefdeadbeef")
        self.assertEqual((st.rc, displib.without_logs(st.err)),
                         (1, "No such request: deadbeefdeadbeef\n"))
        st = self.fleet.ced("--json", "status", "../evil")
        self.assertEqual((st.rc, json.loads(st.out)),
                         (1, {"ok": 0, "error": "not found", "reqid": "../evil"}))

    def test_expired_and_failed_hosts(self):
        a1, a2 = self.fleet.agents
        r, doc = self.fleet.ced_json("run", a1.name, a2.name, "fail", "--async")
        self.assertEqual(r.rc, 0, r)
        reqid = doc["reqid"]
        # The second agent forgets the job: its record is gone.
        harness.wait_until(lambda: os.path.exists(a2.root.path(
            "/var/lib/ctrl-exec-agent/runs")), what="the agent's run store")
        w = self.fleet.ced("wait", reqid, "--timeout", "20")
        self.assertEqual(w.rc, 1, w)  # done with exit 3 is a failure
        self.assertIn("==> %s  [done  exit:3]\nabout to fail\n    STDERR: failure detail\n\n"
                      % a1.name, w.out)


class Locks(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=1)

    def test_conflicts(self):
        a = self.fleet.agents[0]
        self.assertEqual(self.fleet.ced("list-locks").out, "No locks currently held.\n")
        self.fleet.hold_lock(a.name, "noop")
        r = self.fleet.ced("run", a.name, "noop")
        self.assertEqual(r.rc, 1)
        self.assertEqual(displib.without_logs(r.err), "Locked: already running: %s:noop\n" % a.name)
        r, doc = self.fleet.ced_json("run", a.name, "noop")
        self.assertEqual((r.rc, doc), (1, {"ok": 0, "error": "locked", "code": 4,
                                           "conflicts": ["%s:noop" % a.name]}))
        r = self.fleet.ced("list-locks")
        self.assertEqual(r.out, "%-30s  %s\n%s\n%-30s  %s\n" % ("HOST", "SCRIPT", "-" * 50,
                                                                a.name, "noop"))
        r, doc = self.fleet.ced_json("list-locks")
        self.assertEqual(doc, {"ok": 1, "locks": [{"host": a.name, "script": "noop"}]})
        # Another script on the same host is not locked.
        self.assertEqual(self.fleet.ced("run", a.name, "fail").rc, 1)  # exit 3, not locked

    def test_a_running_dispatch_holds_its_lock(self):
        a = self.fleet.agents[0]
        first = self.fleet.disp.spawn(["ced", "run", a.name, "sleeper", "--", "3"])
        lock = self.fleet.disp.path("/var/lib/ctrl-exec/locks/%s--sleeper.lock" % a.name)
        harness.wait_until(lambda: "ACTION=lock-acquire" in first.err(), what="the first lock")
        self.assertEqual(os.stat(lock).st_mode & 0o777, 0o660)
        r = self.fleet.ced("run", a.name, "sleeper", "--", "1")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("Locked: already running: %s:sleeper" % a.name, r.err)
        self.assertEqual(first.wait(30), 0, first.err())
        self.assertIn("ACTION=lock-release HOSTS=%s SCRIPT=sleeper" % a.name, first.err())
        r = self.fleet.ced("run", a.name, "sleeper", "--", "0")
        self.assertEqual(r.rc, 0, r)


class AuthHook(harness.TestCase):
    def setUp(self):
        super().setUp()
        hook = self.root.write("/etc/ctrl-exec/auth-hook",
                               "#!/bin/sh\nenv | grep ^ENVEXEC_ > \"$0.env\"\ncat > \"$0.in\"\n"
                               "[ \"$ENVEXEC_USERNAME\" = alice ] && exit 0\nexit 3\n", 0o755)
        self.fleet = displib.Fleet(self, n=1, dispatcher_extra="auth_hook = %s\n" % hook)
        self.hook = hook

    def test_hook_decides(self):
        a = self.fleet.agents[0]
        r = self.fleet.ced("run", a.name, "noop", "--username", "bob")
        self.assertEqual((r.rc, displib.without_logs(r.err)), (1, "Denied: insufficient privilege\n"))
        r, doc = self.fleet.ced_json("ping", a.name, "--username", "bob")
        self.assertEqual((r.rc, doc), (1, {"ok": 0, "error": "insufficient privilege", "code": 3}))
        r = self.fleet.ced("run", a.name, "echo-args", "--username", "alice", "--token", "t0k",
                           "--", "x y")
        self.assertEqual(r.rc, 0, r)
        env = open(self.hook + ".env").read()
        self.assertIn("ENVEXEC_ACTION=run\n", env)
        self.assertIn("ENVEXEC_HOSTS=%s\n" % a.name, env)
        self.assertIn("ENVEXEC_SOURCE_IP=127.0.0.1\n", env)
        self.assertIn('ENVEXEC_ARGS_JSON=["x y"]\n', env)
        stdin = json.loads(open(self.hook + ".in").read())
        self.assertEqual((stdin["action"], stdin["script"], stdin["username"], stdin["token"]),
                         ("run", "echo-args", "alice", "t0k"))
        # The username and token reach the agent too.
        r, doc = self.fleet.ced_json("run", a.name, "stdin-dump", "--username", "alice",
                                     "--token", "t0k")
        ctx = json.loads(doc["results"][0]["stdout"])
        self.assertEqual((ctx["username"], ctx["token"]), ("alice", "t0k"))

    def test_killed_hook_denies(self):
        os.unlink(self.hook)
        self.root.write("/etc/ctrl-exec/auth-hook", "#!/bin/sh\nkill -9 $$\n", 0o755)
        r = self.fleet.ced("ping", self.fleet.agents[0].name)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("Denied: ", r.err)


class Resumption(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=2)

    def test_second_ping_resumes(self):
        names = self.fleet.names()
        first = self.fleet.ced("ping", *names)
        self.assertEqual(first.rc, 0, first)
        for line in self.fleet.log_lines("ping", first.err):
            self.assertTrue(line.endswith(" TLS=full"), line)
        cache = self.fleet.disp.path("/var/lib/ctrl-exec/tls-sessions")
        self.assertEqual(os.stat(cache).st_mode & 0o777, 0o600)
        written = os.stat(cache)
        second = self.fleet.ced("ping", *names)
        lines = self.fleet.log_lines("ping", second.err)
        self.assertEqual(len(lines), 2)
        for line in lines:
            self.assertTrue(line.endswith(" TLS=resumed"), line)
        # A resumed session young enough is not written back: the file is the same one.
        now = os.stat(cache)
        self.assertEqual((now.st_ino, now.st_mtime_ns), (written.st_ino, written.st_mtime_ns))
        # The cert/key match was checked once and remembered for the unchanged files.
        self.assertIn("ctrl-exec pair-check 1\n",
                      self.fleet.disp.read("/var/lib/ctrl-exec/tls-pair-checked"))
        run = self.fleet.ced("run", *names, "noop")
        for line in self.fleet.log_lines("run", run.err):
            self.assertTrue(line.endswith(" TLS=resumed"), line)
        # A damaged cache costs a full handshake, nothing more.
        with open(cache, "w") as f:
            f.write("{not json")
        third = self.fleet.ced("ping", *names)
        self.assertEqual(third.rc, 0, third)
        for line in self.fleet.log_lines("ping", third.err):
            self.assertTrue(line.endswith(" TLS=full"), line)


class Renewal(harness.TestCase):
    def setUp(self):
        super().setUp()
        # Certs from pairing last 825 days; with cert_days 2000 renewal is due below 1000 days.
        self.fleet = displib.Fleet(self, n=1, dispatcher_extra="cert_days = 2000\n")

    def test_ping_renews_and_the_restarted_agent_serves_the_new_cert(self):
        a = self.fleet.agents[0]
        before = self.fleet.registry(a.name)["expiry"]
        r = self.fleet.ced("ping", a.name)
        self.assertEqual(r.rc, 0, r)
        starting = self.fleet.log_lines("renew", r.err)
        self.assertEqual(len(starting), 1, r.err)
        self.assertRegex(starting[0], r"^ACTION=renew REQID=[0-9a-f]{16} STATUS=starting "
                                      r"TARGET=127\.0\.0\.1:%d$" % a.port)
        done = self.fleet.log_lines("renew-complete", r.err)
        self.assertEqual(len(done), 1, r.err)
        after = self.fleet.registry(a.name)["expiry"]
        self.assertNotEqual(after, before)
        self.assertIn("EXPIRY=\"%s\"" % after, done[0])
        staged = a.root.path("/var/lib/ctrl-exec-agent/agent.crt.staged")
        self.assertTrue(os.path.exists(staged))
        # A staged cert is not renewed again.
        r = self.fleet.ced("--json", "ping", a.name)
        self.assertIs(json.loads(r.out)["results"][0]["staged"], True)
        self.assertEqual(self.fleet.log_lines("renew", r.err), [])
        # The agent adopts it on restart and serves it.
        a.restart()
        self.assertEqual(a.cert_not_after(), after)
        r, doc = self.fleet.ced_json("ping", a.name)
        self.assertEqual(doc["results"][0]["expiry"], after)
        self.assertIs(doc["results"][0]["staged"], False)
        # 2000 days left now: not due any more.
        self.assertEqual(self.fleet.log_lines("renew", r.err), [])


class Rotation(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.fleet = displib.Fleet(self, n=3)

    def serial(self):
        import pairlib  # noqa: E402
        return pairlib.dispatcher_serial(self.fleet.disp)

    def test_rotate_broadcast_and_retire(self):
        old = self.serial()
        r = self.fleet.ced("rotate-cert")
        self.assertEqual(r.rc, 0, r)
        new = self.serial()
        self.assertNotEqual(new, old)
        self.assertIn("Rotating dispatcher certificate...\nNew serial:      %s\n"
                      "Old serial:      %s\n" % (new, old), r.out)
        self.assertIn("Agents pending:  3\n\nBroadcasting new serial to agents...\n"
                      "  Updated: 3\n  Failed:  0\n", r.out)
        for a in self.fleet.agents:
            self.assertEqual(set(a.trusted()), {old, new})
            rec = self.fleet.registry(a.name)
            self.assertEqual((rec["serial_status"], rec["dispatcher_serial"]), ("current", new))
        state = json.loads(self.fleet.disp.read("/var/lib/ctrl-exec/rotation.json"))
        self.assertEqual((state["current_serial"], state["previous_serial"]), (new, old))
        # Every agent accepts the new identity.
        r, doc = self.fleet.ced_json("ping", *self.fleet.names())
        self.assertEqual({x["status"] for x in doc["results"]}, {"ok"})
        st = self.fleet.ced("serial-status")
        self.assertIn("Current serial:  %s\nPrevious serial: %s\n" % (new, old), st.out)
        for a in self.fleet.agents:
            self.assertRegex(st.out, r"\n%s +current +\S+Z +%s" % (re.escape(a.name), new[:16]))

        # A second rotation inside the window would strand agents that missed the first.
        again = self.fleet.ced("rotate-cert")
        self.assertEqual(again.rc, 255, again)
        self.assertIn("Rotation failed: the previous serial %s is not retired yet" % old,
                      again.err)
        self.assertEqual(self.serial(), new)

        # Within the overlap window maintain keeps the old serial.
        m = self.fleet.ced("maintain")
        self.assertEqual(m.rc, 0, m)
        self.assertEqual(m.out, "Maintenance run: 3/3 agents pinged, dispatcher cert checked.\n")
        for a in self.fleet.agents:
            self.assertIn(old, a.trusted())

        # After it, the old serial is removed from every agent, once.
        state["overlap_expires"] = "2000-01-01T00:00:00Z"
        self.fleet.disp.write("/var/lib/ctrl-exec/rotation.json", json.dumps(state), 0o640)
        m = self.fleet.ced("--json", "maintain")
        self.assertEqual(json.loads(m.out), {"ok": 1, "agents": 3, "pinged": 3})
        self.assertEqual(len(self.fleet.log_lines("serial-retire", m.err)), 1, m.err)
        for a in self.fleet.agents:
            self.assertEqual(set(a.trusted()), {new})
        state = json.loads(self.fleet.disp.read("/var/lib/ctrl-exec/rotation.json"))
        self.assertNotIn("previous_serial", state)
        self.assertIn("previous_retired", state)
        self.assertFalse(self.fleet.disp.exists("/etc/ctrl-exec/dispatcher.crt.previous"))
        r, doc = self.fleet.ced_json("ping", *self.fleet.names())
        self.assertEqual({x["status"] for x in doc["results"]}, {"ok"})
        # Retired: the next rotation goes ahead, announced with the identity just retired to.
        r = self.fleet.ced("rotate-cert")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("  Updated: 3\n  Failed:  0\n", r.out)

    def test_missed_broadcast_is_retried_with_the_old_identity(self):
        a1, a2, a3 = self.fleet.agents
        old = self.serial()
        a3.stop()
        r = self.fleet.ced("rotate-cert")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("  Updated: 2\n  Failed:  1\n\nAgents requiring attention:\n  %-30s  "
                      % a3.name, r.out)
        self.assertEqual(self.fleet.registry(a3.name)["serial_status"], "pending")
        # The new identity is not trusted by a3 yet...
        a3.start()
        r, doc = self.fleet.ced_json("ping", a3.name)
        self.assertEqual(doc["results"][0]["error"], "forbidden: serial mismatch")
        # ...until maintain announces it, with the previous identity a3 still trusts.
        m = self.fleet.ced("maintain")
        self.assertEqual(m.rc, 0, m)
        self.assertIn(self.serial(), a3.trusted())
        self.assertIn(old, a3.trusted())
        self.assertEqual(self.fleet.registry(a3.name)["serial_status"], "current")
        r, doc = self.fleet.ced_json("ping", a3.name)
        self.assertEqual(doc["results"][0]["status"], "ok")

    def test_stale_after_the_window(self):
        a3 = self.fleet.agents[2]
        a3.stop()
        self.assertEqual(self.fleet.ced("rotate-cert").rc, 0)
        state = json.loads(self.fleet.disp.read("/var/lib/ctrl-exec/rotation.json"))
        state["overlap_expires"] = "2000-01-01T00:00:00Z"
        self.fleet.disp.write("/var/lib/ctrl-exec/rotation.json", json.dumps(state), 0o640)
        m = self.fleet.ced("maintain")
        self.assertEqual(m.rc, 0, m)
        self.assertEqual(self.fleet.registry(a3.name)["serial_status"], "stale")
        self.assertIn("ACTION=serial-stale AGENT=%s REASON=\"overlap window expired without "
                      "confirmation\"" % a3.name, m.err)
        # --json still prints the state block first, as the original does.
        st = self.fleet.ced("--json", "serial-status")
        self.assertTrue(st.out.startswith("Current serial:  "), st)
        doc = json.loads(st.out.splitlines()[-1])
        self.assertEqual(doc["state"]["overlap_expires"], "2000-01-01T00:00:00Z")
        self.assertEqual({x["hostname"]: x["serial_status"] for x in doc["agents"]}[a3.name],
                         "stale")


if __name__ == "__main__":
    harness.main()
