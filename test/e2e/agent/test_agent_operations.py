"""The agent under operation: SIGHUP reloads mid-traffic, /rotate-serial, rate limiting that
never throttles a trusted dispatcher and survives handshake floods, script_timeout and the
output cap, concurrency, and certificate renewal with promote-cert."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import ETC, STATE  # noqa: E402

MAP = STATE + "/ctrl-exec-dispatchers"


class Reload(agentlib.AgentTestCase):
    def test_sighup_picks_up_a_new_script_mid_traffic_while_a_long_run_completes(self):
        self.agent.start()
        long_run = {}
        t = threading.Thread(target=lambda: long_run.update(
            r=self.agent.run("sleeper", ["2"], reqid="long")))
        t.start()
        agentlib.wait(lambda: "sleep 2" in subprocess.run(["ps", "-eo", "args"],
                                                          capture_output=True, text=True).stdout,
                      what="long run started")
        stop = threading.Event()
        statuses = []

        def traffic():
            while not stop.is_set():
                statuses.append(self.agent.post("/ping", {"reqid": "t"})[0])
        pinger = threading.Thread(target=traffic)
        pinger.start()
        try:
            self.assertEqual(self.agent.run("late")[1]["error"], "script not permitted")
            self.agent.add_script_file("late", "#!/bin/sh\necho late\n")
            self.agent.write_allowlist(list(self.agent.scripts) + ["late"])
            self.agent.proc.signal(1)
            self.agent.wait_log("ACTION=reload DISPATCHERS=2 SCRIPTS=%d STATUS=ok"
                                % (len(self.agent.scripts) + 1))
            self.assertEqual(self.agent.run("late")[1]["stdout"], "late\n")
        finally:
            stop.set()
            pinger.join()
            t.join()
        self.assertEqual(long_run["r"][1]["stdout"], "slept\n")
        self.assertEqual(long_run["r"][1]["exit"], 0)
        self.assertTrue(statuses)
        self.assertEqual(set(statuses), {200})
        self.assertTrue(self.agent.proc.alive())

    def test_a_failed_reload_keeps_the_previous_state(self):
        self.agent.start()
        self.root.write(ETC + "/agent.conf", "this is broken\n")
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        self.assertIn("STATUS=failed", self.agent.log())
        self.assertIn("keeping the previous configuration", self.agent.log())
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")
        # A map that cannot be read keeps the previous map too.
        self.agent.write_conf()
        os.chmod(self.root.path(MAP), 0)
        if os.access(self.root.path(MAP), os.R_OK):
            self.skipTest("running as root: file modes do not stop reads")
        self.agent.proc.signal(1)
        agentlib.wait(lambda: "STATUS=ok" in self.agent.log(), what="second reload")
        self.assertEqual(self.agent.post("/ping", {})[0], 200)

    def test_many_sighups_never_stop_the_server(self):
        self.agent.start()
        for _ in range(10):
            for _ in range(5):
                self.agent.proc.signal(1)  # signals may coalesce; none may stop the server
            self.assertEqual(self.agent.post("/ping", {})[0], 200)
        agentlib.wait(lambda: len(self.agent.log_lines("reload")) >= 10, what="reloads")
        self.assertTrue(self.agent.proc.alive())


class Rotate(agentlib.AgentTestCase):
    def setUp(self):
        super().setUp()
        # A rotated dispatcher cert whose serial (0x25) is all decimal digits: the Perl
        # dispatcher announces it as canon("25") = "19" (agent-and-wire §4.2.1).
        agentlib.harness.openssl_leaf(self.agent.pki, "rotated", "ctrl-exec-dispatcher", "25")
        self.agent.start()

    def rotate(self, serial, action="add", who="disp"):
        return self.agent.post("/rotate-serial", {"serial": serial, "action": action},
                               who=who)

    def test_add_then_the_new_cert_is_trusted_also_after_a_restart(self):
        self.assertEqual(self.agent.post("/ping", {}, who="rotated")[0], 403)
        status, body, _ = self.rotate("19")
        self.assertEqual((status, body), (200, {"status": "ok", "action": "add", "serial": "19",
                                                "dispatcher": "disp-1"}))
        self.agent.wait_log("ACTION=rotate DISPATCHER=disp-1 PEER=127.0.0.1 SERIAL=19 "
                            "SERIAL_ACTION=add")
        self.assertIn("00:19 disp-1\n", self.root.read(MAP))
        self.assertEqual(os.stat(self.root.path(MAP)).st_mode & 0o777, 0o644)
        self.assertEqual(self.agent.post("/ping", {"reqid": "n"}, who="rotated")[0], 200)
        self.agent.wait_log("ACTION=ping DISPATCHER=disp-1 PEER=127.0.0.1 REQID=n")
        self.agent.stop()
        self.agent.start()
        self.assertEqual(self.agent.post("/ping", {}, who="rotated")[0], 200)
        # The old serial retires itself, using the new identity.
        status, body, _ = self.rotate("7f3a9c", "remove", who="rotated")
        self.assertEqual(body["status"], "ok")
        self.assertEqual(self.agent.post("/ping", {})[0], 403)

    def test_ownership_and_errors(self):
        status, body, _ = self.rotate("7f3a9c", "add", who="disp2")
        self.assertEqual((status, body), (200, {"status": "error", "error":
                                                "serial already trusted for dispatcher 'disp-1'"}))
        self.agent.wait_log("ACTION=rotate-fail DISPATCHER=disp-2")
        body = self.rotate("7f3a9c", "remove", who="disp2")[1]
        self.assertEqual(body, {"status": "error", "error": "serial not owned by 'disp-2'"})
        self.assertEqual(self.rotate("")[1], {"status": "error", "error": "serial required"})
        self.assertEqual(self.rotate("ab", "bogus")[1],
                         {"status": "error", "error": "invalid action 'bogus'"})
        self.assertEqual(self.rotate("abcdef0123", "remove")[1]["status"], "ok",
                         "removing an absent serial is a no-op")
        self.assertEqual(self.agent.post("/ping", {}, who="disp2")[0], 200)
        self.assertEqual(self.agent.post("/ping", {})[0], 200)


class RateLimits(agentlib.AgentTestCase):
    rate_limit_disable = False

    def test_a_trusted_dispatcher_is_never_throttled(self):
        self.agent.start()
        statuses = [self.agent.post("/ping", {"reqid": str(i)})[0] for i in range(25)]
        self.assertEqual(set(statuses), {200})
        self.assertNotIn("rate-block", self.agent.log())

    def test_a_burst_of_bad_handshakes_then_a_good_request(self):
        self.agent.start()
        for _ in range(6):  # port scans: connect and close
            with socket.create_connection(("127.0.0.1", self.agent.port)):
                pass
        for _ in range(4):  # TLS without a client certificate
            self.assertEqual(self.agent.post("/ping", {}, who=None)[0], 0)
        for _ in range(2):  # garbage instead of a ClientHello
            with socket.create_connection(("127.0.0.1", self.agent.port)) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.recv(100)
        self.agent.wait_log("ACTION=rate-block PEER=127.0.0.1 REASON=probe")
        self.assertEqual(len(self.agent.log_lines("rate-block")), 1, "one log line per block")
        self.assertTrue(self.agent.proc.alive())
        status, body, _ = self.agent.post("/ping", {"reqid": "after"})
        self.assertEqual((status, body["status"]), (200, "ok"))
        # A blocked IP gets nothing, unless its certificate is a trusted dispatcher's.
        self.assertEqual(self.agent.post("/ping", {}, who="stranger")[0], 0)
        self.assertEqual(self.agent.run("noop")[1]["exit"], 0)

    def test_map_refusals_count_toward_the_volume_limit(self):
        self.agent.write_conf("rate_limit_volume = 3/60/300\nrate_limit_probe = 0/600/3600\n")
        self.agent.start()
        self.assertEqual([self.agent.post("/ping", {}, who="stranger")[0] for _ in range(4)],
                         [403, 403, 403, 0])
        self.agent.wait_log("ACTION=rate-block PEER=127.0.0.1 REASON=volume")
        self.assertEqual(self.agent.post("/ping", {})[0], 200)
        # SIGHUP clears the table.
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        self.assertEqual(self.agent.post("/ping", {}, who="stranger")[0], 403)


class Limits(agentlib.AgentTestCase):
    conf_extra = "script_timeout = 1\nscript_output_limit = 5\n"

    def test_script_timeout_kills_the_process_group(self):
        self.agent.add_script_file("forker", "#!/bin/sh\nsleep 30 &\nsleep 30\n")
        self.agent.write_allowlist(list(self.agent.scripts) + ["forker"])
        self.agent.start()
        t0 = time.monotonic()
        status, body, _ = self.agent.run("forker", reqid="slow")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(status, 200)
        self.assertEqual((body["exit"], body["timed_out"], body["error"]),
                         (126, True, "script timed out after 1s"))
        self.agent.wait_log("ACTION=script-timeout REQID=slow SCRIPT=forker TIMEOUT=1")
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=126")

    def test_output_cap(self):
        self.agent.start()
        body = self.agent.run("echo-args", ["abcdefgh"])[1]
        self.assertEqual((body["stdout"], body["truncated"], body["exit"]), ("argc:", True, 0))
        self.assertNotIn("truncated", self.agent.run("noop")[1])


class Concurrency(agentlib.AgentTestCase):
    def test_runs_execute_concurrently(self):
        self.agent.start()
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            self.agent.run("sleeper", ["1"])[1])) for _ in range(20)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual([r["stdout"] for r in results], ["slept\n"] * 20)


class Renewal(agentlib.AgentTestCase):
    def setUp(self):
        super().setUp()
        self.agent.start()

    def sign(self, csr_pem, name, ca="ca"):
        d = self.agent.pki
        with open(os.path.join(d, name + ".csr"), "w") as f:
            f.write(csr_pem)
        agentlib.harness.sh("openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -set_serial "
                            "0x0b22 -days 60 -out %s.crt" % (name, ca, ca, name), cwd=d)
        with open(os.path.join(d, name + ".crt")) as f:
            return f.read()

    def test_renew_stage_and_promote(self):
        status, body, _ = self.agent.post("/renew", {"reqid": "rn1"})
        self.assertEqual((status, body["status"], body["reqid"]), (200, "ok", "rn1"))
        csr = body["csr"]
        self.assertTrue(csr.startswith("-----BEGIN CERTIFICATE REQUEST-----"))
        d = self.agent.pki
        with open(os.path.join(d, "renew.csr"), "w") as f:
            f.write(csr)
        verify = agentlib.harness.sh("openssl req -in renew.csr -noout -verify -pubkey", cwd=d)
        agent_pub = agentlib.harness.sh("openssl pkey -in agent.key -pubout", cwd=d).stdout
        self.assertIn(agent_pub.strip(), verify.stdout, "the CSR reuses the agent's key")
        self.agent.wait_log("ACTION=renew PEER=127.0.0.1 REQID=rn1 STATUS=csr-generated")

        cert = self.sign(csr, "renewed")
        with open(os.path.join(d, "ca.crt")) as f:
            ca = f.read()
        status, body, _ = self.agent.post("/renew-complete", {"cert": cert, "ca": ca,
                                                              "reqid": "rn2"})
        self.assertEqual((status, body), (200, {"status": "ok", "reqid": "rn2", "staged": True}))
        staged = self.root.path(STATE + "/agent.crt.staged")
        self.assertEqual(os.stat(staged).st_mode & 0o777, 0o640)
        self.assertIs(self.agent.post("/ping", {})[1]["staged"], True)
        self.agent.wait_log("ACTION=renew-complete PEER=127.0.0.1 REQID=rn2 STATUS=cert-staged")

        self.agent.stop()
        r = self.root.run(["ctrl-exec-agent", "promote-cert"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertFalse(os.path.exists(staged))
        self.assertEqual(self.root.read(ETC + "/agent.crt"), cert)
        self.assertIn("ACTION=cert-promote STATUS=installed", r.err)
        self.assertEqual(self.root.run(["ctrl-exec-agent", "promote-cert"]).rc, 0)  # no-op
        self.agent.start()
        self.assertEqual(self.agent.post("/ping", {})[1]["staged"], False)

    def test_renew_complete_refusals(self):
        with open(os.path.join(self.agent.pki, "ca.crt")) as f:
            ca = f.read()
        with open(os.path.join(self.agent.pki, "disp.crt")) as f:
            other_key_cert = f.read()
        foreign = self.sign(self.agent.post("/renew", {})[1]["csr"], "foreign-renewed",
                            ca="otherca")
        for cert, err in (("", "cert required"),
                          (foreign, "renewed cert does not verify against the agent CA"),
                          (other_key_cert,
                           "renewed cert public key does not match the agent key")):
            status, body, _ = self.agent.post("/renew-complete", {"cert": cert, "ca": ca})
            self.assertEqual((status, body), (200, {"status": "error", "error": err}))
        self.assertFalse(os.path.exists(self.root.path(STATE + "/agent.crt.staged")))

    def test_promote_drops_an_invalid_staged_cert(self):
        live = self.root.read(ETC + "/agent.crt")
        with open(os.path.join(self.agent.pki, "disp.crt")) as f:
            self.root.write(STATE + "/agent.crt.staged", f.read())
        r = self.root.run(["ctrl-exec-agent", "promote-cert"])
        self.assertEqual(r.rc, 0)
        self.assertFalse(self.root.exists(STATE + "/agent.crt.staged"))
        self.assertEqual(self.root.read(ETC + "/agent.crt"), live)
        self.assertIn("ACTION=cert-promote ERROR=", r.err)


if __name__ == "__main__":
    agentlib.harness.main()
