"""The agent with privilege separation: a real `ctrl-exec-agent serve` whose executor_socket is a
real `ctrl-exec-exec serve` (agent-and-wire §4.8, the agent side of issue 12): sync and async
runs under their profile, the limits mapped back, self-check, require_executor.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "agent"))
import agentlib  # noqa: E402
import execlib  # noqa: E402
from execlib import ETC  # noqa: E402

SCRIPTS = {
    "ids": "#!/bin/sh\nid -u\n",
    "forker": "#!/bin/sh\nsleep 30 &\necho \"$!\"\nsleep 30\n",
}


class AgentWithExecutor(execlib.harness.TestCase):
    """A paired agent in a root under /var/tmp with executor_socket set, and its executor."""

    CONF_EXTRA = ""
    START_EXECUTOR = True

    def setUp(self):
        execlib.skip_unless_root(self)
        self.root = execlib.harness.Root(self.id().split(".")[-1][:40],
                                         parent=execlib.ROOTS_PARENT)
        self.addCleanup(self.root.cleanup)
        os.chmod(self.root.dir, 0o755)
        self.sock = self.root.path(execlib.SOCKET)
        os.makedirs(os.path.dirname(self.sock))
        os.chmod(os.path.dirname(os.path.dirname(self.sock)), 0o755)
        self.agent = agentlib.Agent(self.root, "executor_socket = %s\n%s" % (
            self.sock, self.CONF_EXTRA), scripts=SCRIPTS)
        self.addCleanup(self.wait_for_jobs)
        self.addCleanup(self.agent.stop)
        # Gate scripts run as nobody: their marker directory must be writable by it.
        os.makedirs(self.root.path("/gates"), exist_ok=True)
        os.chmod(self.root.path("/gates"), 0o777)
        self.executor = None
        if self.START_EXECUTOR:
            self.start_executor()

    def wait_for_jobs(self, timeout=30):
        """Lets async jobs finish (then kills them) before the executor and the root go: every
        process of this root's binary but the executor."""
        def jobs():
            return [p for p in agentlib.root_processes(self.root)
                    if not self.executor or p != self.executor.pid]
        deadline = execlib.now() + timeout
        while jobs() and execlib.now() < deadline:
            time.sleep(0.05)
        for pid in jobs():
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, 9)
                except OSError:
                    pass

    def start_executor(self):
        self.executor = self.root.spawn(["ctrl-exec-exec", "serve", self.sock,
                                         self.root.path(ETC + "/agent.conf"),
                                         self.root.path(ETC + "/scripts.conf"), "nobody"])
        execlib.wait_listening(self.sock, self.executor)


class Sync(AgentWithExecutor):
    def test_run_as_the_profile_user(self):
        self.agent.start()
        self.assertEqual(self.agent.run("ids", reqid="s1")[:2],
                         (200, {"script": "ids", "exit": 0, "stdout": "65534\n", "stderr": "",
                                "reqid": "s1"}))
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=s1 "
                            "SCRIPT=ids")

    def test_context_and_args_reach_the_script(self):
        self.agent.start()
        status, body, _ = self.agent.run("stdin-dump", ["a b", "caf\u00e9"], reqid="s2")
        self.assertEqual((status, body["exit"], body["stderr"]), (200, 0, ""), body)
        ctx = json.loads(body["stdout"])
        self.assertEqual((ctx["script"], ctx["args"], ctx["reqid"], ctx["dispatcher"],
                          ctx["username"], ctx["token"]),
                         ("stdin-dump", ["a b", "caf\u00e9"], "s2", "disp-1", "alice", "tok"))
        status, body, _ = self.agent.run("echo-args", ["a b", "", "$(id)"], reqid="s3")
        self.assertEqual(body["stdout"], "argc: 3\n[a b]\n[]\n[$(id)]\n")

    def test_the_executor_decides_for_itself(self):
        # The agent read its allowlist at start; the executor re-reads its own. A script the
        # agent still allows but the allowlist no longer holds is refused by the executor.
        self.agent.start()
        self.assertEqual(self.agent.run("ids")[1]["stdout"], "65534\n")
        self.agent.write_allowlist([n for n in self.agent.scripts if n != "ids"])
        status, body, _ = self.agent.run("ids", reqid="s4")
        self.assertEqual((status, body["exit"], body["stderr"]),
                         (200, -1, "executor: script not permitted\n"), body)


class Required(AgentWithExecutor):
    """require_executor = yes with executor_socket set: serve starts, and runs go through the
    executor."""

    CONF_EXTRA = "require_executor = yes\n"

    def test_runs_through_the_executor(self):
        self.agent.start()
        self.assertNotIn("profiles are NOT enforced", self.agent.log())
        self.assertEqual(self.agent.run("ids")[1]["stdout"], "65534\n")


class SyncLimits(AgentWithExecutor):
    CONF_EXTRA = "script_timeout = 1\nscript_output_limit = 100\n"

    def test_timeout_and_output_limit_are_mapped_back(self):
        self.agent.start()
        start = execlib.now()
        status, body, _ = self.agent.run("forker", reqid="t1")
        self.assertLess(execlib.now() - start, 10)
        child = int(body.pop("stdout"))
        self.assertEqual((status, body),
                         (200, {"script": "forker", "exit": 126, "stderr": "", "reqid": "t1",
                                "timed_out": True, "error": "script timed out after 1s"}))
        execlib.harness.wait_until(lambda: not execlib.alive(child), 5,
                                   what="the timed-out script's child gone")
        status, body, _ = self.agent.run("echo-args", ["x" * 200], reqid="t2")
        self.assertEqual((status, body),
                         (200, {"script": "echo-args", "exit": 0,
                                "stdout": ("argc: 1\n[" + "x" * 200)[:100],
                                "stderr": "", "reqid": "t2", "truncated": True}))


class Async(AgentWithExecutor):
    def result(self, reqid):
        return self.agent.get("/result/" + reqid)

    def test_async_run_under_the_profile_survives_a_restart(self):
        gate = self.agent.add_gate_script("long", then="id -u; echo on-stderr >&2")
        self.agent.start()
        status, body, _ = self.agent.run("long", reqid="as1", extra={"async": True})
        self.assertEqual((status, body), (202, {"script": "long", "status": "accepted",
                                                "reqid": "as1"}))
        gate.wait_started()
        # The job runs as the profile's user: the marker it made is nobody's.
        marker = [f for f in os.listdir(gate.dir) if f.startswith("long.started.")][0]
        self.assertEqual(os.stat(os.path.join(gate.dir, marker)).st_uid, execlib.NOBODY)
        self.assertEqual(self.agent.stop(), 0)
        self.agent.start()
        status, body, _ = self.result("as1")
        self.assertEqual((status, body["status"]), (200, "running"), body)
        gate.release()

        def done():
            status, body, _ = self.result("as1")
            return body if status == 200 and body.get("status") == "done" else None
        rec = execlib.harness.wait_until(done, 20, what="async as1 done")
        self.assertEqual((rec["exit"], rec["stdout"], rec["stderr"], rec["owner"]),
                         (0, "65534\n", "on-stderr\n", "disp-1"), rec)


class SelfCheck(AgentWithExecutor):
    START_EXECUTOR = False

    def self_check(self):
        r = self.root.run(["ctrl-exec-agent", "self-check"])
        self.assertEqual(r.rc, 0, r)
        return r.out.splitlines()

    def test_reports_the_executor_and_profiles(self):
        down = self.self_check()
        self.assertIn("  Profile 'default': run_as=nobody caps=- writable=- "
                      "no_new_privileges=yes", down)
        self.assertIn("  Script 'ids': %s  (profile: default) [ok]"
                      % self.agent.script_path("ids"), down)
        self.assertEqual([line for line in down if line.startswith("  Executor")],
                         ["  Executor: NOT answering on %s - connect: No such file or directory"
                          % self.sock], down)
        self.start_executor()
        up = self.self_check()
        self.assertEqual([line for line in up if line.startswith("  Executor")],
                         ["  Executor OK (%s): profiles are enforced" % self.sock], up)


class RequireExecutor(execlib.harness.TestCase):
    def test_serve_refuses_without_executor_socket(self):
        agent = agentlib.Agent(self.root, "require_executor = yes\n")
        self.addCleanup(agent.stop)
        proc = agent.start(wait=False)
        self.assertEqual(proc.wait(10), 78, proc.err())
        self.assertIn("require_executor", proc.err())
        self.assertIn("executor_socket", proc.err())

    def test_no_is_the_old_warning(self):
        agent = agentlib.Agent(self.root, "require_executor = no\n")
        self.addCleanup(agent.stop)
        agent.start()
        self.assertIn("profiles are NOT enforced", agent.log())


if __name__ == "__main__":
    execlib.harness.main()
