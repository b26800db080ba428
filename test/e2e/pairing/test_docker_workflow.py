"""DOCKER.md's pairing workflow, steps 1-6, done for real in two temp roots on loopback: the
dispatcher's first start (setup-ca, setup-ctrl-exec), pairing-mode answered through stdin, the
agent's request-pairing, approval, `serve`, and the checks that the agent obeys this dispatcher
(pairing-status, self-ping, a request with the dispatcher's cert, and `ced ping` once the
dispatcher engine provides it)."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402
import pairlib  # noqa: E402


def not_built(result):
    return "not built yet" in result.err


class DockerWorkflow(harness.TestCase):
    def test_steps_1_to_6(self):
        agent = harness.Root("agent")
        self.addCleanup(agent.cleanup)
        serve_port = harness.free_port()
        pairlib.write_agent_conf(agent, port=serve_port, extra="\n[profile default]\n")
        agent.write("/etc/ctrl-exec-agent/scripts.conf", "")
        probe = agent.run(["ctrl-exec-agent", "paired"])
        if not_built(probe):
            self.skipTest("ctrl-exec-agent serve is not on main yet")

        # Step 1: the dispatcher's first start.
        pairlib.setup_dispatcher(self.root)
        etc = self.root.path("/etc/ctrl-exec")

        # Step 2: pairing mode, answered through stdin.
        port = harness.free_port()
        pm = pairlib.spawn_pairing_mode(self.root, port, stdin=subprocess.PIPE)

        # Step 3: the agent's first start finds no cert and requests pairing.
        self.assertNotEqual(agent.run(["ctrl-exec-agent", "paired"]).rc, 0)
        req = agent.spawn(["ctrl-exec-agent", "request-pairing", "--dispatcher", "127.0.0.1",
                           "--port", str(port), "--lookup-by", "ip"])

        # Step 4: the request appears as DOCKER.md shows it; type "a".
        harness.wait_until(lambda: "Accept, Deny, or Skip? [a/d/s]: " in pm.out(),
                           what="the prompt")
        block = pm.out()[pm.out().index("Pairing request from "):]
        m = re.match(r"Pairing request from (\S+) \(127\.0\.0\.1\) - ID: ([0-9a-f]{16})\n"
                     r"  Received: \S+Z\n  Code:     (\d{6})   ", block)
        self.assertTrue(m, block)
        name, reqid, code = m.groups()
        self.assertIn("Pairing code: %s\n" % code, req.out())
        pm.popen.stdin.write("a\n")
        pm.popen.stdin.flush()
        self.assertEqual(req.wait(30), 0, req.err())

        # Step 5: restart the agent: it finds its cert and serves.
        self.assertEqual(agent.run(["ctrl-exec-agent", "paired"]).rc, 0)
        status = agent.run(["ctrl-exec-agent", "pairing-status"])
        self.assertEqual(status.rc, 0, status)
        rec = json.loads(self.root.read("/var/lib/ctrl-exec/agents/%s.json" % name))
        self.assertEqual(status.out, "Paired. Certificate expires: %s\n" % rec["expiry"])
        serve = agent.spawn(["ctrl-exec-agent", "serve"])
        harness.wait_until(lambda: harness.port_open(serve_port) or not serve.alive(),
                           what="the agent to listen")
        self.assertTrue(serve.alive(), serve.err())

        # Step 6: verify.
        ping = agent.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(ping.rc, 0, ping)
        self.assertIn("Self-ping complete.", ping.out)
        st, body, _ = harness.curl("https://127.0.0.1:%d/ping" % serve_port,
                                   cert=etc + "/dispatcher.crt", key=etc + "/dispatcher.key",
                                   method="POST", data={"reqid": "0123456789abcdef"})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["status"], "ok")
        cp = self.root.run(["ced", "ping", name])
        if not not_built(cp):
            self.assertEqual(cp.rc, 0, cp)
            self.assertRegex(cp.out, r"\n%s\s+ok\s" % re.escape(name))
        pm.popen.stdin.write("quit\n")
        pm.popen.stdin.flush()
        self.assertEqual(pm.wait(10), 0)


if __name__ == "__main__":
    harness.main()
