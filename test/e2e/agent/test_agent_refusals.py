"""Every refusal path of the agent: no client cert, another CA, a serial not in the map, a
revoked serial, a blocked IP, the auth hook (deny, timeout, signal), and what each logs."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import ETC  # noqa: E402

HOOK_LOG = "/hook.log"


class Certificates(agentlib.AgentTestCase):
    def setUp(self):
        super().setUp()
        self.agent.start()

    def test_no_client_certificate_is_refused_at_the_handshake(self):
        status, _, err = self.agent.post("/ping", {"reqid": "r"}, who=None)
        self.assertEqual(status, 0, err)
        self.agent.wait_log("ACTION=tls-failure PEER=127.0.0.1")
        # Not even the unguarded renewal endpoints are reachable without a certificate.
        self.assertEqual(self.agent.post("/renew", {"reqid": "r"}, who=None)[0], 0)

    def test_a_certificate_from_another_ca_is_refused(self):
        status, _, _ = self.agent.post("/ping", {"reqid": "r"}, who="foreign")
        self.assertEqual(status, 0)
        self.agent.wait_log("ACTION=tls-failure PEER=127.0.0.1")

    def test_a_serial_not_in_the_map_gets_serial_mismatch(self):
        for method, path, body in (("POST", "/run", {"script": "noop"}),
                                   ("POST", "/ping", {"reqid": "r"}),
                                   ("GET", "/result/abc", None),
                                   ("POST", "/rotate-serial", {"serial": "5eed"})):
            status, reply, _ = self.agent.curl(method, path, body, who="stranger")
            self.assertEqual((status, reply),
                             (403, {"error": "serial mismatch", "status": "forbidden"}), path)
        self.agent.wait_log("ACTION=serial-reject PEER=127.0.0.1 PEER_SERIAL=5eed REQID=(none)")
        self.agent.wait_log("ACTION=serial-reject PEER=127.0.0.1 PEER_SERIAL=5eed REQID=abc")
        status, reply, _ = self.agent.get("/capabilities", who="stranger")
        self.assertEqual((status, reply), (403, {"error": "forbidden"}))
        self.agent.wait_log("ACTION=capabilities-deny PEER=127.0.0.1 PEER_SERIAL=5eed "
                            "REASON=serial-mismatch")

    def test_renewal_endpoints_are_not_map_gated(self):
        status, reply, _ = self.agent.post("/renew", {"reqid": "r"}, who="stranger")
        self.assertEqual((status, reply["status"]), (200, "ok"))

    def test_an_empty_map_refuses_everything(self):
        self.agent.write_map("# nobody\n")
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload DISPATCHERS=0")
        self.assertEqual(self.agent.post("/ping", {"reqid": "r"})[0], 403)
        self.assertEqual(self.agent.get("/capabilities")[0], 403)
        self.agent.wait_log('REASON="no trusted dispatchers stored"')


class Revoked(agentlib.AgentTestCase):
    def test_a_revoked_serial_is_refused_on_every_endpoint(self):
        self.root.write(ETC + "/revoked-serials", "# revoked\n0x7F:3A:9C  # disp-1\n")
        self.agent.start()
        for method, path, body in (("POST", "/ping", {}), ("POST", "/run", {"script": "noop"}),
                                   ("GET", "/capabilities", None), ("POST", "/renew", {}),
                                   ("POST", "/renew-complete", {"cert": "x"}),
                                   ("GET", "/nope", None)):
            status, reply, _ = self.agent.curl(method, path, body)
            self.assertEqual((status, reply), (403, {"error": "certificate revoked"}), path)
        self.agent.wait_log("ACTION=revoked-cert PEER=127.0.0.1 SERIAL=7f3a9c")
        # Another dispatcher is unaffected.
        self.assertEqual(self.agent.post("/ping", {}, who="disp2")[0], 200)


class BlockedIp(agentlib.AgentTestCase):
    conf_extra = "allowed_ips = 10.0.0.0/8, 192.168.001.0/24, bogus, 1.2.3.4/12\n"

    def test_a_peer_outside_allowed_ips_is_dropped_before_tls(self):
        self.agent.start()
        status, _, _ = self.agent.post("/ping", {"reqid": "r"})
        self.assertEqual(status, 0)
        self.agent.wait_log("ACTION=ip-block PEER=127.0.0.1")
        self.assertNotIn("tls-failure", self.agent.log(), "dropped before any handshake")
        log = self.agent.log()
        self.assertIn('ACTION=config-warn ENTRY=bogus MSG="malformed IPv4 address"', log)
        self.assertIn('ACTION=config-warn ENTRY=1.2.3.4/12 MSG="unsupported prefix length"', log)

    def test_an_allowed_peer_is_served(self):
        self.agent.write_conf("allowed_ips = 10.0.0.0/8,127.0.0.1\n")
        self.agent.start()
        self.assertEqual(self.agent.post("/ping", {"reqid": "r"})[0], 200)


class Hook(agentlib.AgentTestCase):
    def install_hook(self, body, timeout=10):
        path = self.root.write("/hook.sh", "#!/bin/sh\n" + body, 0o755)
        self.agent.write_conf("auth_hook = %s\nauth_hook_timeout = %d\n" % (path, timeout))

    def test_hook_receives_the_contract_and_allows(self):
        log = self.root.path(HOOK_LOG)
        self.install_hook("env | grep ^ENVEXEC_ | sort > %s\ncat > %s.json\nexit 0\n"
                          % (log, log))
        self.agent.start()
        body = self.agent.run("echo-args", ["x y", "z"], extra={"username": "bob"})[1]
        self.assertEqual(body["exit"], 0)
        env = dict(l.split("=", 1) for l in open(log).read().splitlines())
        self.assertEqual(env["ENVEXEC_ACTION"], "run")
        self.assertEqual(env["ENVEXEC_SCRIPT"], "echo-args")
        self.assertEqual(env["ENVEXEC_ARGS"], "x y z")
        self.assertEqual(env["ENVEXEC_ARGS_JSON"], '["x y","z"]')
        self.assertEqual(env["ENVEXEC_USERNAME"], "bob")
        self.assertEqual(env["ENVEXEC_TOKEN"], "tok")
        self.assertEqual(env["ENVEXEC_SOURCE_IP"], "127.0.0.1")
        self.assertEqual(env["ENVEXEC_DISPATCHER"], "disp-1")
        self.assertEqual(env["ENVEXEC_DISPATCHER_SERIAL"], "7f3a9c")
        self.assertEqual(env["ENVEXEC_HOSTS"], "")
        self.assertEqual(env["ENVEXEC_REQID"], "")
        import json
        stdin = json.load(open(log + ".json"))
        self.assertEqual(stdin["action"], "run")
        self.assertEqual(stdin["hosts"], [])
        self.assertEqual(stdin["dispatcher_serial"], "7f3a9c")
        self.assertIsNone(stdin["submitter"])
        self.agent.wait_log("ACTION=auth AUTHACTION=run IP=127.0.0.1 RESULT=pass USER=bob")
        # Discovery and rotation go through the hook too.
        self.assertEqual(self.agent.get("/capabilities")[0], 200)
        self.assertEqual(open(log).read().count("ENVEXEC_ACTION=discovery"), 1)

    def test_hook_denial(self):
        self.install_hook("exit 2\n")
        self.agent.start()
        status, body, _ = self.agent.run("noop", reqid="d1")
        self.assertEqual((status, body), (200, {"script": "noop", "exit": -1, "reqid": "d1",
                                                "error": "not authorised: bad credentials"}))
        self.agent.wait_log('ACTION=deny DISPATCHER=disp-1 PEER=127.0.0.1 '
                            'REASON="bad credentials" REQID=d1 SCRIPT=noop')
        status, body, _ = self.agent.get("/capabilities")
        self.assertEqual((status, body), (403, {"error": "not authorised"}))
        status, body, _ = self.agent.post("/rotate-serial", {"serial": "abcd", "action": "add"})
        self.assertEqual((status, body), (403, {"error": "not authorised: bad credentials"}))
        self.agent.wait_log('ACTION=rotate-deny DISPATCHER=disp-1 REASON="bad credentials"')
        self.assertNotIn("abcd", self.root.read("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers"))

    def test_other_exit_codes(self):
        self.install_hook("exit 13\n")
        self.agent.start()
        self.assertEqual(self.agent.run("noop")[1]["error"], "not authorised: hook exited 13")

    def test_hook_timeout_denies(self):
        marker = self.root.path("/script-ran")
        self.agent.add_script_file("touch", "#!/bin/sh\n: > %s\n" % marker)
        self.agent.write_allowlist(list(self.agent.scripts) + ["touch"])
        hook_pid = self.root.path("/hook.pid")
        self.install_hook("echo $$ > %s\nexec sleep 30\n" % hook_pid, timeout=1)
        self.agent.start()
        t0 = time.monotonic()
        status, body, _ = self.agent.run("touch", reqid="slow1")
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual((status, body), (200, {"script": "touch", "exit": -1, "reqid": "slow1",
                                                "error": "not authorised: denied"}))
        self.assertFalse(os.path.exists(marker), "the script must not run")
        self.agent.wait_log("ACTION=auth-hook-timeout TIMEOUT=1")
        self.agent.wait_log('ACTION=deny DISPATCHER=disp-1 PEER=127.0.0.1 REASON=denied '
                            'REQID=slow1 SCRIPT=touch')
        # The hook was killed, not left behind.
        with open(hook_pid) as f:
            pid = int(f.read())

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                return True
        agentlib.wait(gone, what="the timed-out hook to be killed")
        # A prompt hook still allows afterwards.
        self.install_hook("exit 0\n", timeout=1)
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")

    def test_hook_killed_by_a_signal_denies(self):
        # The original reads a signalled hook's status as exit 0 and allows (A§4.7 QUIRK).
        marker = self.root.path("/script-ran")
        self.agent.add_script_file("touch", "#!/bin/sh\n: > %s\n" % marker)
        self.agent.write_allowlist(list(self.agent.scripts) + ["touch"])
        self.install_hook("kill -TERM $$\nsleep 5\n")
        self.agent.start()
        status, body, _ = self.agent.run("touch", reqid="sig1")
        self.assertEqual((status, body), (200, {"script": "touch", "exit": -1, "reqid": "sig1",
                                                "error": "not authorised: hook killed by "
                                                         "signal 15"}))
        self.assertFalse(os.path.exists(marker), "the script must not run")
        self.agent.wait_log('ACTION=auth AUTHACTION=run IP=127.0.0.1 '
                            'REASON="hook killed by signal 15" RESULT=deny USER=alice')
        self.agent.wait_log('ACTION=deny DISPATCHER=disp-1 PEER=127.0.0.1 '
                            'REASON="hook killed by signal 15" REQID=sig1 SCRIPT=touch')
        # Discovery and rotation fail closed the same way.
        self.assertEqual(self.agent.get("/capabilities")[:2], (403, {"error": "not authorised"}))
        self.assertEqual(self.agent.post("/rotate-serial", {"serial": "abcd"})[:2],
                         (403, {"error": "not authorised: hook killed by signal 15"}))

    def test_hook_not_executable_at_call_time(self):
        self.install_hook("exit 0\n")
        self.agent.start()
        os.chmod(self.root.path("/hook.sh"), 0o644)
        body = self.agent.run("noop")[1]
        self.assertEqual(body["error"], "not authorised: auth hook not found or not executable: %s"
                         % self.root.path("/hook.sh"))


if __name__ == "__main__":
    agentlib.harness.main()
