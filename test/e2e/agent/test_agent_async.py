"""Async runs: 202 then /result running -> done, 409 while the script runs, owner-gated
records, the reqid rule, and a job that survives an agent restart."""
import json
import os
import re
import signal
import sys
import unittest.mock

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import STATE  # noqa: E402

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Async(agentlib.AgentTestCase):
    def submit(self, script, args=(), reqid="a1", who="disp"):
        return self.agent.run(script, args, reqid=reqid, who=who, extra={"async": True})

    def result(self, reqid, who="disp"):
        return self.agent.get("/result/" + reqid, who=who)

    def wait_done(self, reqid, timeout=15):
        def done():
            status, body, _ = self.result(reqid)
            return body if status == 200 and body.get("status") == "done" else None
        return agentlib.wait(done, timeout, "async %s done" % reqid)

    def test_accept_then_result(self):
        self.agent.start()
        status, body, head = self.submit("echo-args", ["x y"], reqid="asyncr1")
        self.assertEqual((status, body), (202, {"script": "echo-args", "status": "accepted",
                                                "reqid": "asyncr1"}))
        self.assertTrue(head.startswith("HTTP/1.0 202 Accepted"))
        self.agent.wait_log("ACTION=run-async DISPATCHER=disp-1 PEER=127.0.0.1 REQID=asyncr1 "
                            "SCRIPT=echo-args")
        rec = self.wait_done("asyncr1")
        self.assertEqual(set(rec), {"reqid", "status", "script", "owner", "started", "finished",
                                    "exit", "stdout", "stderr"})
        self.assertEqual((rec["owner"], rec["exit"], rec["stdout"], rec["stderr"]),
                         ("disp-1", 0, "argc: 1\n[x y]\n", ""))
        self.assertRegex(rec["started"], ISO)
        self.assertRegex(rec["finished"], ISO)
        path = self.root.path(STATE + "/runs/disp-1/asyncr1.json")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o750)
        self.agent.wait_log("ACTION=result DISPATCHER=disp-1 PEER=127.0.0.1 REQID=asyncr1 "
                            "STATUS=done")

    def test_running_record_busy_and_other_scripts(self):
        self.agent.start()
        self.assertEqual(self.submit("sleeper", ["3"], reqid="long1")[0], 202)
        status, body, _ = self.result("long1")
        self.assertEqual((status, body["status"], body["script"]), (200, "running", "sleeper"))
        self.assertNotIn("exit", body)
        status, body, _ = self.submit("sleeper", ["1"], reqid="long2")
        self.assertEqual((status, body), (409, {"script": "sleeper", "status": "busy",
                                                "reqid": "long2",
                                                "error": "script already running"}))
        self.agent.wait_log("ACTION=run-async-busy PEER=127.0.0.1 REQID=long2 SCRIPT=sleeper")
        self.assertEqual(self.result("long2")[0], 404, "no record for a busy submission")
        # Another script is not held up, and sync runs of the same script still work.
        self.assertEqual(self.submit("noop", reqid="other")[0], 202)
        self.assertEqual(self.agent.run("sleeper", ["0"])[1]["stdout"], "slept\n")
        self.assertEqual(self.wait_done("long1")["stdout"], "slept\n")
        # The lock is released with the job.
        self.assertEqual(self.submit("sleeper", ["0"], reqid="long3")[0], 202)

    def test_results_are_owner_gated(self):
        self.agent.start()
        self.submit("noop", reqid="mine1")
        self.wait_done("mine1")
        status, body, _ = self.result("mine1", who="disp2")
        self.assertEqual((status, body), (404, {"status": "unknown", "reqid": "mine1"}))
        # A legacy flat record of another dispatcher is refused as not-owner.
        self.root.write(STATE + "/runs/flat1.json",
                        json.dumps({"reqid": "flat1", "status": "done", "owner": "disp-1"}))
        self.assertEqual(self.result("flat1", who="disp2")[0], 404)
        self.agent.wait_log("ACTION=result-deny DISPATCHER=disp-2 PEER=127.0.0.1 "
                            "REASON=not-owner REQID=flat1")
        self.assertEqual(self.result("flat1")[0], 200)

    def test_async_needs_a_valid_reqid(self):
        self.agent.start()
        for reqid in ("", "../x", "a b"):
            status, body, _ = self.submit("noop", reqid=reqid)
            self.assertEqual((status, body), (200, {"script": "noop", "exit": -1, "reqid": reqid,
                                                    "error": "async run requires a valid reqid"}))

    def test_async_with_an_executor_goes_through_it(self):
        # The original refuses async runs when executor_socket is set; ours accepts them and the
        # job's supervisor hands the script to the executor (docs/COMPATIBILITY.md). With no
        # executor listening, the job ends with the transport error in its record.
        self.agent.write_conf("executor_socket = %s\n" % self.root.path("/run/exec.sock"))
        self.agent.start()
        status, body, _ = self.submit("noop")
        self.assertEqual((status, body["status"]), (202, "accepted"))
        rec = self.wait_done(body["reqid"])
        self.assertEqual(rec["exit"], -1)
        self.assertTrue(rec["stderr"].startswith("executor unreachable: "), rec["stderr"])

    def test_a_runs_dir_that_cannot_be_made_refuses_the_job(self):
        # A path below a regular file: no user, root included, can create it.
        self.agent.write_conf("async_runs_dir = %s/runs\n" % self.root.path(
            "/etc/ctrl-exec-agent/agent.crt"))
        self.agent.start()
        status, body, _ = self.submit("noop", reqid="nostore1")
        self.assertEqual((status, body), (200, {"script": "noop", "exit": -1, "reqid": "nostore1",
                                                "error": "could not start async job"}))
        self.agent.wait_log("ACTION=async-store-fail ERROR=")
        self.assertIn("REQID=nostore1", self.agent.log_lines("async-store-fail")[0])
        self.assertEqual(self.result("nostore1")[0], 404)
        # Sync runs are unaffected.
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")

    def test_old_records_are_purged_on_the_next_submission(self):
        self.agent.start()
        old = self.root.write(STATE + "/runs/disp-1/old.json", "{}")
        flat = self.root.write(STATE + "/runs/old-flat.json", "{}")
        fresh = self.root.write(STATE + "/runs/disp-2/fresh.json", "{}")
        for p in (old, flat):
            os.utime(p, (0, 0))
        self.submit("noop", reqid="p1")
        self.assertFalse(os.path.exists(old))
        self.assertFalse(os.path.exists(flat))
        self.assertTrue(os.path.exists(fresh))

    def survive(self, stop):
        gate = self.agent.add_gate_script("long", then="echo survived; echo on-stderr >&2")
        self.agent.start()
        self.assertEqual(self.submit("long", reqid="survive1")[0], 202)
        gate.wait_started()
        stop()
        self.assertEqual(self.result("survive1")[0], 0, "the agent is down")
        self.agent.start()
        # The job is still running, and its supervisor still holds the script's lock.
        status, body, _ = self.result("survive1")
        self.assertEqual((status, body["status"]), (200, "running"))
        self.assertEqual(self.submit("long", reqid="survive2")[0], 409)
        gate.release()
        rec = self.wait_done("survive1")
        self.assertEqual((rec["exit"], rec["stdout"], rec["stderr"], rec["owner"]),
                         (0, "survived\n", "on-stderr\n", "disp-1"))
        # The record written after the restart is still owner-gated.
        self.assertEqual(self.result("survive1", who="disp2"),
                         (404, {"status": "unknown", "reqid": "survive1"}, unittest.mock.ANY))
        self.agent.wait_log("ACTION=result-miss DISPATCHER=disp-2 PEER=127.0.0.1 REQID=survive1")
        # The lock went with the job.
        self.assertEqual(self.submit("long", reqid="survive3")[0], 202)
        gate.wait_started(2)

    def test_a_job_survives_an_agent_restart(self):
        self.survive(lambda: self.assertEqual(self.agent.stop(), 0))

    def test_a_job_survives_the_agent_being_killed(self):
        def kill():
            self.agent.proc.signal(signal.SIGKILL)
            self.agent.proc.wait()
            self.agent.proc = None
        self.survive(kill)


INTERRUPTED = ("interrupted: the job's supervisor ended without a result (agent or host "
               "restarted)")


def process_tree(pids):
    """`pids` and all their descendants, found through /proc."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree = set(pids)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


class AsyncRepair(agentlib.AgentTestCase):
    """Records whose supervisor is gone are marked interrupted (issue 13, item 4)."""

    def test_records_of_a_killed_tree_are_marked_interrupted(self):
        gates = {name: self.agent.add_gate_script(name) for name in ("job1", "job2", "job3")}
        self.agent.start()
        for name in gates:
            status, body, _ = self.agent.run(name, reqid="kill-" + name, extra={"async": True})
            self.assertEqual(status, 202, body)
        for gate in gates.values():
            gate.wait_started()
        # kill -9 of the whole tree: the agent, the supervisors and the scripts. All are stopped
        # first, so that no supervisor sees its script die and writes a result.
        tree = process_tree(agentlib.root_processes(self.root))
        self.assertGreaterEqual(len(tree), 7, "agent, 3 supervisors, 3 scripts")
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in tree:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        self.agent.proc.wait()
        self.agent.proc = None
        agentlib.wait(lambda: not agentlib.root_processes(self.root), 10, "the tree to be gone")
        for name in gates:
            path = self.root.path(STATE + "/runs/disp-1/kill-%s.json" % name)
            with open(path) as f:
                self.assertEqual(json.load(f)["status"], "running", "left running by the kill")

        self.agent.start()

        def resolved(reqid):
            status, body, _ = self.agent.get("/result/" + reqid)
            return body if status == 200 and body.get("status") == "done" else None
        for name in gates:
            rec = agentlib.wait(lambda: resolved("kill-" + name), 20, "kill-%s resolved" % name)
            self.assertEqual(set(rec), {"reqid", "status", "script", "owner", "started", "finished",
                                        "exit", "stdout", "stderr", "error"})
            self.assertEqual((rec["script"], rec["owner"], rec["exit"], rec["stdout"],
                              rec["stderr"], rec["error"]),
                             (name, "disp-1", -1, "", INTERRUPTED, INTERRUPTED))
            self.assertRegex(rec["finished"], ISO)
            self.agent.wait_log("ACTION=async-interrupted DISPATCHER=disp-1 REQID=kill-%s "
                                "SCRIPT=%s" % (name, name))
        self.assertEqual(len(self.agent.log_lines("async-interrupted")), 3)
        # The locks went with the supervisors: the scripts can run again.
        status, body, _ = self.agent.run("job1", reqid="again1", extra={"async": True})
        self.assertEqual(status, 202, body)
        gates["job1"].wait_started(2)
        self.assertEqual(self.agent.get("/result/again1")[1]["status"], "running")
        gates["job1"].release()
        self.assertEqual(agentlib.wait(lambda: resolved("again1"), 15, "again1")["exit"], 0)


class AsyncLimits(agentlib.AgentTestCase):
    conf_extra = "script_timeout = 1\nscript_output_limit = 5\n"

    def test_timeout_and_output_cap_apply_to_async_jobs(self):
        self.agent.start()
        self.agent.run("sleeper", ["30"], reqid="to1", extra={"async": True})
        self.agent.run("echo-args", ["abcdefgh"], reqid="cap1", extra={"async": True})

        def done(reqid):
            body = self.agent.get("/result/" + reqid)[1]
            return body if body.get("status") == "done" else None
        rec = agentlib.wait(lambda: done("to1"), 10, "timed-out job")
        self.assertEqual((rec["exit"], rec["timed_out"]), (126, True))
        rec = agentlib.wait(lambda: done("cap1"), 10, "capped job")
        self.assertEqual((rec["stdout"], rec["truncated"]), ("argc:", True))


if __name__ == "__main__":
    agentlib.harness.main()
