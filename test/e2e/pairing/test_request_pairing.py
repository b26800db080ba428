"""`ctrl-exec-agent request-pairing` against our dispatcher, and against scripted dispatchers for
the failures (agent-and-wire §5.4; transcript 04): the interactive flow with pairing-mode
answered through stdin, --background with approve, deny and the timeout, the files and the
trusted map, two dispatchers, and every failure message."""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402
import pairlib  # noqa: E402


class AgentCase(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.agent = harness.Root("agent")
        self.addCleanup(self.agent.cleanup)
        pairlib.write_agent_conf(self.agent, port=harness.free_port())
        probe = self.agent.run(["ctrl-exec-agent", "request-pairing"])
        if "not built yet" in probe.err:
            self.skipTest("the ctrl-exec-agent applet is not on main yet")

    def dispatcher(self, root=None, extra="pairing_rate_limit_disable = 1\n"):
        root = root or self.root
        pairlib.setup_dispatcher(root, extra)
        return harness.free_port()

    def pair_args(self, port, *extra):
        return ["ctrl-exec-agent", "request-pairing", "--dispatcher", "127.0.0.1", "--port",
                str(port), "--lookup-by", "ip"] + list(extra)

    def trusted(self):
        path = self.agent.path("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers")
        if not os.path.exists(path):
            return {}
        out = {}
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line:
                serial, ident = line.split(None, 1)
                out[serial] = ident
        return out


class Interactive(AgentCase):
    def test_pairs_with_the_code_the_dispatcher_shows(self):
        port = self.dispatcher()
        pm = pairlib.spawn_pairing_mode(self.root, port, stdin=subprocess.PIPE)
        agent = self.agent.spawn(self.pair_args(port))
        harness.wait_until(lambda: "Accept, Deny, or Skip? [a/d/s]: " in pm.out(),
                           what="the prompt")
        shown = re.search(r"  Code:     (\d{6})   \(verify", pm.out()).group(1)
        printed = re.search(r"Pairing code: (\d{6})\n", agent.out()).group(1)
        self.assertEqual(shown, printed)
        # Both equal the code of §5.3 computed here, over the CSR exactly as it arrived.
        reqid = re.search(r"- ID: ([0-9a-f]{16})\n", pm.out()).group(1)
        queued = json.loads(self.root.read("/var/lib/ctrl-exec/pairing/%s.json" % reqid))
        self.assertEqual(pairlib.pairing_code(queued["csr"]), printed)
        self.assertEqual(queued["code"], printed)
        pm.popen.stdin.write("a\n")
        pm.popen.stdin.flush()
        self.assertEqual(agent.wait(30), 0, agent.err())
        name = re.search(r"Generating key and CSR for '([^']+)'", agent.out()).group(1)
        self.assertEqual(agent.out(),
                         "Generating key and CSR for '%s'...\n"
                         "Pairing code: %s\n"
                         "  Verify this code matches the ctrl-exec display before approving.\n\n"
                         "Connecting to ctrl-exec at 127.0.0.1 for pairing...\n"
                         "Pairing complete. Certificates stored.\n\n" % (name, printed)
                         + agent.out().split("Certificates stored.\n\n", 1)[1])
        self.assertTrue(agent.out().endswith("Then verify with: ctrl-exec-agent self-ping\n"))
        self.assertIn("ACTION=pair-complete DISPATCHER=%s DISPATCHER_HOST=127.0.0.1 "
                      "STATUS=approved" % self.dispatcher_id(), agent.err())
        if "." not in name:
            self.assertIn("Warning: could not determine a fully-qualified domain name", agent.err())

        # The files, their modes, and what they hold.
        etc = self.agent.path("/etc/ctrl-exec-agent")
        self.assertEqual(pairlib.mode(etc + "/agent.crt"), 0o640)
        self.assertEqual(pairlib.mode(etc + "/agent.key"), 0o640)
        self.assertEqual(pairlib.mode(etc + "/ca.crt"), 0o644)
        self.assertEqual(self.agent.read("/etc/ctrl-exec-agent/ca.crt"),
                         self.root.read("/etc/ctrl-exec/ca.crt"))
        v = harness.sh("openssl verify -CAfile %s/ca.crt %s/agent.crt" % (etc, etc))
        self.assertIn(": OK", v.stdout)
        mod = lambda f: harness.sh("openssl pkey -pubout -in %s" % f).stdout  # noqa: E731
        self.assertEqual(mod(etc + "/agent.key"),
                         harness.sh("openssl x509 -pubkey -noout -in %s/agent.crt" % etc).stdout)
        # RSA-2048 by default: the original's dispatcher signs no CSR under 2048 bits (issue 11).
        self.assertRegex(harness.sh("openssl pkey -text -noout -in %s/agent.key" % etc).stdout,
                         r"Private-Key: \(2048 bit")
        mapfile = self.agent.path("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers")
        self.assertEqual(pairlib.mode(mapfile), 0o644)
        self.assertEqual(self.trusted(), {pairlib.dispatcher_serial(self.root):
                                          self.dispatcher_id()})
        rec = json.loads(self.root.read("/var/lib/ctrl-exec/agents/%s.json" % name))
        self.assertEqual((rec["lookup_by"], rec["ip"]), ("ip", "127.0.0.1"))
        self.assertEqual(rec["port"], int(re.search(r"port = (\d+)", self.agent.read(
            "/etc/ctrl-exec-agent/agent.conf")).group(1)))
        pm.popen.stdin.write("quit\n")
        pm.popen.stdin.flush()
        self.assertEqual(pm.wait(10), 0)

    def dispatcher_id(self):
        return re.search(r"dispatcher_id = (\S+)",
                         self.root.read("/etc/ctrl-exec/ctrl-exec.conf")).group(1)

    def test_denied(self):
        port = self.dispatcher()
        pm = pairlib.spawn_pairing_mode(self.root, port, stdin=subprocess.PIPE)
        agent = self.agent.spawn(self.pair_args(port))
        harness.wait_until(lambda: "Accept, Deny, or Skip?" in pm.out(), what="prompt")
        pm.popen.stdin.write("d\n")
        pm.popen.stdin.flush()
        self.assertEqual(agent.wait(30), 255)
        self.assertIn("Pairing denied: rejected by operator\n", agent.err())
        self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        self.assertEqual(self.trusted(), {})


class Background(AgentCase):
    def run_bg(self, port, timeout=30):
        r = self.agent.run(self.pair_args(port, "--background", "--timeout", str(timeout)))
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"^[0-9a-f]{16}\n$")  # only the reqid
        return r.out.strip()

    def test_background_approve_deny_and_timeout(self):
        port = self.dispatcher()
        pairlib.spawn_pairing_mode(self.root, port)
        # Approved: the detached half stores the files.
        reqid = self.run_bg(port)
        listing = self.root.run(["ced", "list-requests"]).out
        self.assertIn(reqid, listing)
        self.assertEqual(self.root.run(["ced", "approve", reqid]).rc, 0)
        crt = self.agent.path("/etc/ctrl-exec-agent/agent.crt")
        harness.wait_until(lambda: os.path.exists(crt), what="the agent cert")
        harness.wait_until(lambda: self.trusted(), what="the trusted map")
        self.assertEqual(list(self.trusted()), [pairlib.dispatcher_serial(self.root)])

        # Denied: nothing changes on the agent.
        before = self.agent.read("/etc/ctrl-exec-agent/agent.crt")
        reqid = self.run_bg(port)
        self.assertEqual(self.root.run(["ced", "deny", reqid]).rc, 0)
        harness.wait_until(lambda: not self.child_running(reqid), what="the child to exit")
        self.assertEqual(self.agent.read("/etc/ctrl-exec-agent/agent.crt"), before)

        # No answer within --timeout: the child gives up; the request stays queued.
        t0 = time.monotonic()
        reqid = self.run_bg(port, timeout=1)
        harness.wait_until(lambda: not self.child_running(reqid), timeout=10,
                           what="the timed-out child to exit")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn(reqid, self.root.run(["ced", "list-requests"]).out)
        self.assertEqual(self.agent.read("/etc/ctrl-exec-agent/agent.crt"), before)

    def child_running(self, reqid):
        # The detached half runs as `ctrl-exec ctrl-exec-pairing --request-child ...` with this
        # agent's config; it has no reqid on its command line, so match on the config path.
        conf = self.agent.path("/etc/ctrl-exec-agent/agent.conf")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
                with open("/proc/%s/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            if b"--request-child" in cmd and conf.encode() in cmd:
                return True
        return False

    def test_background_failure_is_reported_by_the_foreground(self):
        port = harness.free_port()
        r = self.agent.run(self.pair_args(port, "--background"))
        self.assertEqual(r.rc, 255)
        self.assertEqual(r.out, "")
        self.assertIn("Cannot connect to ctrl-exec at 127.0.0.1:%d: connection refused" % port,
                      r.err)


class TwoDispatchers(AgentCase):
    def test_both_serials_end_up_in_the_map(self):
        other = harness.Root("dispatcher-b")
        self.addCleanup(other.cleanup)
        port_a = self.dispatcher(self.root)
        port_b = self.dispatcher(other)
        self.agent.write("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers",
                         "# kept\nabc123 legacy-dispatcher\n")
        for root, port in ((self.root, port_a), (other, port_b)):
            pairlib.spawn_pairing_mode(root, port)
            reqid = self.run_bg(port)
            self.assertEqual(root.run(["ced", "approve", reqid]).rc, 0)
            serial = pairlib.dispatcher_serial(root)
            harness.wait_until(lambda: serial in self.trusted(), what="serial of " + root.dir)
        ids = [re.search(r"dispatcher_id = (\S+)", r.read("/etc/ctrl-exec/ctrl-exec.conf"))
               .group(1) for r in (self.root, other)]
        self.assertEqual(self.trusted(), {
            "abc123": "legacy-dispatcher",
            pairlib.dispatcher_serial(self.root): ids[0],
            pairlib.dispatcher_serial(other): ids[1],
        })

    run_bg = Background.run_bg

    def test_two_dispatchers_under_one_ca_are_both_accepted(self):
        # agent-and-wire §9.3 "native multi-dispatcher": each its own cert, serial and id,
        # under one shared CA. Pairing with either must not lock the other one out.
        other = harness.Root("dispatcher-b")
        self.addCleanup(other.cleanup)
        port_a = self.dispatcher(self.root)
        pairlib.write_dispatcher_conf(other, "pairing_rate_limit_disable = 1\n")
        for f in ("ca.key", "ca.crt", "ca.serial"):
            other.write("/etc/ctrl-exec/" + f, self.root.read("/etc/ctrl-exec/" + f), 0o600)
        r = other.run(["ced", "setup-ctrl-exec"])
        self.assertEqual(r.rc, 0, r)
        port_b = harness.free_port()
        serials = [pairlib.dispatcher_serial(r) for r in (self.root, other)]
        self.assertNotEqual(serials[0], serials[1])
        for root, port in ((self.root, port_a), (other, port_b)):
            pairlib.spawn_pairing_mode(root, port)
            reqid = self.run_bg(port)
            self.assertEqual(root.run(["ced", "approve", reqid]).rc, 0)
            serial = pairlib.dispatcher_serial(root)
            harness.wait_until(lambda: serial in self.trusted(), what="serial of " + root.dir)
        ids = [re.search(r"dispatcher_id = (\S+)", r.read("/etc/ctrl-exec/ctrl-exec.conf"))
               .group(1) for r in (self.root, other)]
        self.assertEqual(self.trusted(), dict(zip(serials, ids)))

        # The agent serves; each dispatcher's own certificate is accepted, as itself.
        serve_port = int(re.search(r"port = (\d+)", self.agent.read(
            "/etc/ctrl-exec-agent/agent.conf")).group(1))
        pairlib.write_agent_conf(self.agent, port=serve_port, extra="\n[profile default]\n")
        self.agent.write("/etc/ctrl-exec-agent/scripts.conf", "")
        serve = self.agent.spawn(["ctrl-exec-agent", "serve"])
        harness.wait_until(lambda: harness.port_open(serve_port) or not serve.alive(),
                           what="the agent to listen")
        self.assertTrue(serve.alive(), serve.err())
        for root, ident in zip((self.root, other), ids):
            etc = root.path("/etc/ctrl-exec")
            st, body, _ = harness.curl("https://127.0.0.1:%d/ping" % serve_port,
                                       cert=etc + "/dispatcher.crt", key=etc + "/dispatcher.key",
                                       method="POST",
                                       data={"reqid": "0123456789abcdef"})
            self.assertEqual((st, json.loads(body)["status"]), (200, "ok"), body)
            harness.wait_until(lambda: "ACTION=ping DISPATCHER=%s PEER=127.0.0.1" % ident
                               in serve.err(), what="ping logged as " + ident)
        serve.stop()


class BackgroundChild(AgentCase):
    """The detached half of --background, run here in the foreground so that its exit status
    can be read: 0 stored, 2 no answer within --timeout, 3 denied or a nonce mismatch
    (agent-and-wire §5.4 step 9). It is started exactly as the foreground starts it."""

    def child(self, port, timeout=30):
        rfd, wfd = os.pipe()
        env = dict(self.agent.env)
        env["CTRL_EXEC_PAIRING_HANDOFF"] = str(wfd)
        proc = subprocess.Popen(
            [os.path.join(self.agent.bin, "ctrl-exec"), "ctrl-exec-pairing", "--request-child",
             "--config", self.agent.path("/etc/ctrl-exec-agent/agent.conf"),
             "--dispatcher", "127.0.0.1", "--port", str(port), "--timeout", str(timeout),
             "--lookup-by", "ip"],
            env=env, pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        os.close(wfd)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        with os.fdopen(rfd) as f:  # the child closes its end once it has reported
            report = f.read()
        return proc, report.strip()

    def finish(self, proc):
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err

    def test_exit_codes_0_2_3(self):
        port = self.dispatcher()
        pairlib.spawn_pairing_mode(self.root, port)
        # 3: denied by the operator.
        proc, reqid = self.child(port)
        self.assertRegex(reqid, r"^[0-9a-f]{16}$")
        self.assertEqual(self.root.run(["ced", "deny", reqid]).rc, 0)
        rc, out, err = self.finish(proc)
        self.assertEqual((rc, out), (3, ""), err)
        self.assertIn('ACTION=pair-denied REASON="rejected by operator" REQID=%s' % reqid, err)
        self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        # 2: no answer within --timeout; the request stays queued for the operator.
        t0 = time.monotonic()
        proc, reqid = self.child(port, timeout=1)
        rc, out, err = self.finish(proc)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual((rc, out), (2, ""), err)
        self.assertIn("ACTION=pair-timeout REQID=%s" % reqid, err)
        self.assertIn(reqid, self.root.run(["ced", "list-requests"]).out)
        self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        # 0: approved and stored.
        proc, reqid = self.child(port)
        self.assertEqual(self.root.run(["ced", "approve", reqid]).rc, 0)
        rc, out, err = self.finish(proc)
        self.assertEqual((rc, out), (0, ""), err)
        self.assertIn("ACTION=pair-complete", err)
        self.assertTrue(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        self.assertEqual(list(self.trusted()), [pairlib.dispatcher_serial(self.root)])

    def test_a_nonce_mismatch_exits_3(self):
        d = os.path.join(self.root.dir, "fake")
        harness.openssl_ca(d)
        harness.openssl_leaf(d, "srv", "ctrl-exec-dispatcher", "1a2b")
        port = fake_dispatcher(self, d, [
            {"status": "pending", "reqid": "0123456789abcdef"},
            {"status": "approved", "cert": "x", "ca": "y", "nonce": "0" * 32,
             "dispatcher_serial": "1a2b", "dispatcher_id": "fake"}])
        proc, reqid = self.child(port)
        self.assertEqual(reqid, "0123456789abcdef")
        rc, out, err = self.finish(proc)
        self.assertEqual(rc, 3, err)
        self.assertIn('ACTION=pair-denied REASON="nonce mismatch in pairing result" '
                      'REQID=0123456789abcdef', err)
        self.assertEqual(self.trusted(), {})

    def test_no_pairing_behind_a_foreground_that_gave_up(self):
        # The foreground waits a bounded time for the reqid and then reports failure; a child
        # that gets its answers only later must not store anything.
        d = os.path.join(self.root.dir, "late")
        harness.openssl_ca(d)
        harness.openssl_leaf(d, "srv", "ctrl-exec-dispatcher", "1a2b")

        def sign(request):
            with open(os.path.join(d, "agent.csr"), "w") as f:
                f.write(request["csr"])
            harness.sh("openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -set_serial "
                       "0x0b0c -days 30 -out agent.crt 2>/dev/null", cwd=d)
            with open(os.path.join(d, "agent.crt")) as f:
                cert = f.read()
            with open(os.path.join(d, "ca.crt")) as f:
                ca = f.read()
            return [{"status": "pending", "reqid": "00000000000000bb"},
                    {"status": "approved", "cert": cert, "ca": ca, "nonce": request["nonce"],
                     "dispatcher_serial": "1a2b", "dispatcher_id": "late"}]
        late = threading.Event()
        self.addCleanup(late.set)
        port = fake_dispatcher(self, d, sign, before=late)
        rfd, wfd = os.pipe()
        env = dict(self.agent.env)
        env["CTRL_EXEC_PAIRING_HANDOFF"] = str(wfd)
        proc = subprocess.Popen(
            [os.path.join(self.agent.bin, "ctrl-exec"), "ctrl-exec-pairing", "--request-child",
             "--config", self.agent.path("/etc/ctrl-exec-agent/agent.conf"),
             "--dispatcher", "127.0.0.1", "--port", str(port), "--timeout", "30"],
            env=env, pass_fds=(wfd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        os.close(wfd)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        os.close(rfd)  # the foreground gives up
        late.set()
        rc, out, err = self.finish(proc)
        self.assertEqual(rc, 255, err)
        self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        self.assertEqual(self.trusted(), {})

    def test_a_failure_before_the_reqid_is_reported_to_the_foreground(self):
        port = harness.free_port()
        proc, report = self.child(port)
        self.assertTrue(report.startswith("!Cannot connect to ctrl-exec at 127.0.0.1:%d: "
                                          "connection refused" % port), report)
        rc, _, _ = self.finish(proc)
        self.assertEqual(rc, 255)


class Failures(AgentCase):
    def test_connection_refused(self):
        port = harness.free_port()
        r = self.agent.run(self.pair_args(port))
        self.assertEqual(r.rc, 255)
        self.assertIn("Cannot connect to ctrl-exec at 127.0.0.1:%d: connection refused - is "
                      "pairing mode running?\n" % port, r.err)
        self.assertEqual(r.out, "")  # nothing generated before the probe

    def test_not_in_pairing_mode(self):
        # Something listens but does not speak TLS (e.g. the API on the wrong port).
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.addCleanup(srv.close)
        port = srv.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                conn.recv(65536)
                conn.sendall(b"HTTP/1.0 404 Not Found\r\n\r\n")
                conn.close()
        threading.Thread(target=serve, daemon=True).start()
        r = self.agent.run(self.pair_args(port))
        self.assertEqual(r.rc, 255, r)
        self.assertIn("ctrl-exec at 127.0.0.1:%d is not in pairing mode" % port, r.err)

    def test_a_full_queue_and_a_rate_limit_are_told_as_such(self):
        # A genuine agent at our listener with a full queue, or from an address over the
        # rate limit, is told which (issue 11, defect 5), not "not in pairing mode".
        port = self.dispatcher(extra="pairing_rate_limit_disable = 1\npairing_max_queue = 0\n")
        pm = pairlib.spawn_pairing_mode(self.root, port)
        r = self.agent.run(self.pair_args(port), timeout=60)
        pm.stop()
        self.assertEqual(r.rc, 255, r)
        self.assertIn("Pairing failed: pairing queue full\n", r.err)
        self.assertNotIn("not in pairing mode", r.err)

        other = harness.Root("disp2")
        self.addCleanup(other.cleanup)
        # One connection a minute: the agent's reachability probe uses it up.
        port = self.dispatcher(other, extra="pairing_rate_limit_volume = 1/60/300\n")
        pm = pairlib.spawn_pairing_mode(other, port)
        r = self.agent.run(self.pair_args(port), timeout=60)
        self.assertEqual(r.rc, 255, r)
        self.assertIn("Pairing failed: rate limited - too many connections from this address; "
                      "try again later\n", r.err)
        self.assertNotIn("not in pairing mode", r.err)
        pm.wait_for_log("ACTION=pair-reject IP=127.0.0.1 REASON=rate-limited")
        # Told once per block: the next connection from that address is dropped unanswered.
        again = self.agent.run(self.pair_args(port), timeout=60)
        self.assertEqual(again.rc, 255, again)
        self.assertIn("is not in pairing mode", again.err)
        pm.stop()

    def test_nonce_mismatch_and_other_answers(self):
        d = os.path.join(self.root.dir, "fake")
        harness.openssl_ca(d)
        harness.openssl_leaf(d, "srv", "ctrl-exec-dispatcher", "1a2b")
        rows = [
            ({"status": "approved", "cert": "x", "ca": "y", "nonce": "0" * 32,
              "dispatcher_serial": "1a2b", "dispatcher_id": "fake"},
             "Pairing failed: nonce mismatch in pairing result\n"),
            ({"status": "denied", "reason": "approval timeout"},
             "Pairing denied: approval timeout\n"),
        ]
        for second, message in rows:
            port = fake_dispatcher(self, d, [{"status": "pending", "reqid": "0123456789abcdef"},
                                             second])
            r = self.agent.run(self.pair_args(port))
            self.assertEqual(r.rc, 255, r)
            self.assertTrue(r.err.endswith(message), r.err)
            self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))
        port = fake_dispatcher(self, d, [{"status": "error", "reason": "pairing queue full"}])
        r = self.agent.run(self.pair_args(port))
        self.assertEqual(r.rc, 255, r)
        self.assertTrue(r.err.endswith("Pairing failed: pairing queue full\n"), r.err)

    def test_responses_are_read_by_content_length_on_a_connection_left_open(self):
        # The dispatcher does not close after its answers (a Perl child may linger): the agent
        # must not wait for EOF. Both responses may also arrive in one segment.
        d = os.path.join(self.root.dir, "open")
        harness.openssl_ca(d)
        harness.openssl_leaf(d, "srv", "ctrl-exec-dispatcher", "1a2b")

        def sign(request):
            with open(os.path.join(d, "agent.csr"), "w") as f:
                f.write(request["csr"])
            harness.sh("openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -set_serial "
                       "0x0b0c -days 30 -out agent.crt 2>/dev/null", cwd=d)
            with open(os.path.join(d, "agent.crt")) as f:
                cert = f.read()
            with open(os.path.join(d, "ca.crt")) as f:
                ca = f.read()
            return [{"status": "pending", "reqid": "00000000000000aa"},
                    {"status": "approved", "cert": cert, "ca": ca, "nonce": request["nonce"],
                     "dispatcher_serial": "1a2b", "dispatcher_id": "held-open"}]
        release = threading.Event()
        self.addCleanup(release.set)
        port = fake_dispatcher(self, d, sign, hold=release)
        r = self.agent.run(self.pair_args(port), timeout=30)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Pairing complete. Certificates stored.\n", r.out)
        self.assertEqual(self.trusted(), {"1a2b": "held-open"})

    def test_pairs_with_a_dispatcher_that_signs_like_the_original(self):
        # The original signs with the openssl CLI: an RSA CA, X.509 v1 certificates without
        # extensions, sequential serials from ca.serial, and it sends canon() of its own serial.
        d = os.path.join(self.root.dir, "perl-like")
        os.makedirs(d)
        harness.sh("openssl req -x509 -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt "
                   "-days 30 -subj '/CN=ctrl-exec CA' 2>/dev/null && echo 01 > ca.serial && "
                   "openssl req -new -nodes -newkey rsa:2048 -keyout srv.key -out srv.csr "
                   "-subj '/CN=ctrl-exec-dispatcher' 2>/dev/null && openssl x509 -req -in "
                   "srv.csr -CA ca.crt -CAkey ca.key -CAserial ca.serial -days 825 -out srv.crt "
                   "2>/dev/null", cwd=d)

        def sign(request):
            with open(os.path.join(d, "agent.csr"), "w") as f:
                f.write(request["csr"])
            harness.sh("openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAserial "
                       "ca.serial -days 825 -out agent.crt 2>/dev/null", cwd=d)
            with open(os.path.join(d, "agent.crt")) as f:
                cert = f.read()
            with open(os.path.join(d, "ca.crt")) as f:
                ca = f.read()
            return [{"reqid": "64dbe4662559d086", "status": "pending"},
                    {"dispatcher_id": "vm", "nonce": request["nonce"], "status": "approved",
                     "cert": cert, "dispatcher_serial": "2", "ca": ca}]
        port = fake_dispatcher(self, d, sign)
        r = self.agent.run(self.pair_args(port))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Pairing complete. Certificates stored.\n", r.out)
        self.assertEqual(self.trusted(), {"2": "vm"})
        crt = self.agent.path("/etc/ctrl-exec-agent/agent.crt")
        self.assertIn("Version: 1 (0x0)", harness.sh("openssl x509 -noout -text -in " + crt).stdout)
        self.assertEqual(pairlib.mode(crt), 0o640)

    def test_option_errors(self):
        r = self.agent.run(["ctrl-exec-agent", "request-pairing"])
        self.assertNotEqual(r.rc, 0)
        self.assertIn("--dispatcher", r.err)
        r = self.agent.run(["ctrl-exec-agent", "request-pairing", "--dispatcher", "x",
                            "--lookup-by", "dns"])
        self.assertNotEqual(r.rc, 0)
        self.assertIn("must be 'ip' or 'hostname'", r.err)


def original_csr_refusal(csr_pem, expected_cn=None):
    """The original 0.12.3 signer's checks of a CSR, made the way it makes them (with the
    openssl CLI): the CSR's own signature, at least 2048 bits as `openssl req -text` prints
    them (so every EC key is refused), no md2/md4/md5/sha1 signature, and, for a renewal, the
    CN. Returns the message the original dies with, or None when it would sign."""
    d = tempfile.mkdtemp(prefix="cx-orig-csr-")
    try:
        path = os.path.join(d, "req.csr")
        with open(path, "w") as f:
            f.write(csr_pem)
        v = subprocess.run(["openssl", "req", "-verify", "-noout", "-in", path],
                           capture_output=True, text=True)
        if v.returncode != 0:
            return "Command failed (openssl req -verify): exit %d" % v.returncode
        text = subprocess.run(["openssl", "req", "-in", path, "-noout", "-text"],
                              capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(d)
    bits = re.search(r"Public-Key:\s*\((\d+)\s*bit\)", text)
    if not bits or int(bits.group(1)) < 2048:
        return "CSR public key too small (need >= 2048 bits)"
    alg = re.search(r"Signature Algorithm:\s*(\S+)", text)
    if not alg or re.search(r"(?:md[245]|sha-?1)(?![0-9])", alg.group(1), re.I):
        return "CSR uses a weak or unrecognised signature algorithm" + (
            " (%s)" % alg.group(1) if alg else "")
    if expected_cn is not None:
        cn = re.search(r"Subject:[^\n]*?\bCN\s*=\s*([^,\n]+)", text)
        if not cn or cn.group(1).rstrip() != expected_cn:
            return "CSR subject CN does not match the expected identity"
    return None


class OriginalDispatcher:
    """A dispatcher that signs as the original does, for pairing (through fake_dispatcher) and
    for renewal (as a 7443 client): an RSA-4096 CA and dispatcher cert made with the openssl
    CLI, X.509 v1 agent certs with sequential serials, and original_csr_refusal() first.
    `operator` collects what the operator would see from `approve` and the renewal."""

    def __init__(self, case):
        self.case = case
        self.dir = tempfile.mkdtemp(prefix="original-", dir=case.root.dir)
        harness.sh("openssl req -x509 -nodes -newkey rsa:4096 -keyout ca.key -out ca.crt "
                   "-days 30 -subj '/CN=ctrl-exec CA' 2>/dev/null && echo 01 > ca.serial && "
                   "openssl req -new -nodes -newkey rsa:4096 -keyout srv.key -out srv.csr "
                   "-subj '/CN=ctrl-exec-dispatcher' 2>/dev/null && openssl x509 -req -in "
                   "srv.csr -CA ca.crt -CAkey ca.key -CAserial ca.serial -days 825 -out srv.crt "
                   "2>/dev/null", cwd=self.dir)
        serial = harness.sh("openssl x509 -noout -serial -in srv.crt", cwd=self.dir).stdout
        self.serial = serial.strip().split("=", 1)[1].lower().lstrip("0") or "0"
        self.operator = []

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def sign(self, csr, cn=None, check=True):
        """The signed cert PEM, or None after recording the refusal for the operator."""
        refusal = original_csr_refusal(csr, cn) if check else None
        if refusal:
            self.operator.append(refusal)
            return None
        with open(os.path.join(self.dir, "agent.csr"), "w") as f:
            f.write(csr)
        harness.sh("openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAserial "
                   "ca.serial -days 825 -out agent.crt 2>/dev/null", cwd=self.dir)
        return self.read("agent.crt")

    def pairing_answers(self, request, check=True):
        """`approve` as the operator runs it; when it dies, the operator denies instead."""
        cert = self.sign(request["csr"], check=check)
        pending = {"reqid": "64dbe4662559d086", "status": "pending"}
        if cert is None:
            return [pending, {"status": "denied", "reason": "rejected by operator"}]
        return [pending, {"dispatcher_id": "orig", "nonce": request["nonce"],
                          "status": "approved", "cert": cert, "ca": self.read("ca.crt"),
                          "dispatcher_serial": self.serial}]

    def call(self, port, path, body):
        """One request to the agent's 7443 with the dispatcher cert; the JSON answer."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(os.path.join(self.dir, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.dir, "srv.crt"), os.path.join(self.dir, "srv.key"))
        data = json.dumps(body).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with ctx.wrap_socket(raw) as conn:
                conn.sendall(b"POST %s HTTP/1.0\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % (path.encode(), len(data)) + data)
                resp = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
        head, body = resp.split(b"\r\n\r\n", 1)
        self.case.assertIn(b" 200 ", head.split(b"\r\n", 1)[0])
        return json.loads(body)

    def renew(self, port, hostname):
        """The original's renewal of one agent: /renew, its checks, sign, /renew-complete.
        Returns the /renew-complete answer, or None when the CSR was refused."""
        reqid = "5eed5eed5eed5eed"
        got = self.call(port, "/renew", {"reqid": reqid})
        self.case.assertEqual(got["status"], "ok", got)
        cert = self.sign(got["csr"], hostname)
        if cert is None:
            return None
        return self.call(port, "/renew-complete",
                         {"cert": cert, "ca": self.read("ca.crt"), "reqid": reqid})


class AgainstTheOriginal(AgentCase):
    """Our agent with a dispatcher that signs by the original's rules (issue 11)."""

    def pair(self, *extra):
        orig = OriginalDispatcher(self)
        port = fake_dispatcher(self, orig.dir, orig.pairing_answers)
        return orig, self.agent.run(self.pair_args(port, *extra), timeout=60)

    def serve_paired(self, pairing):
        """Starts `serve` on the agent just paired; returns its name, its port and the process."""
        hostname = re.search(r"Generating key and CSR for '([^']+)'", pairing.out).group(1)
        port = int(re.search(r"port = (\d+)", self.agent.read(
            "/etc/ctrl-exec-agent/agent.conf")).group(1))
        self.agent.write("/etc/ctrl-exec-agent/scripts.conf", "")
        serve = self.agent.spawn(["ctrl-exec-agent", "serve"])
        self.addCleanup(serve.stop)
        serve.wait_for_log("ACTION=start ")
        return hostname, port, serve

    def key_text(self):
        return harness.sh("openssl pkey -text -noout -in " +
                          self.agent.path("/etc/ctrl-exec-agent/agent.key")).stdout

    def test_the_default_key_pairs_and_renews(self):
        orig, r = self.pair()
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Pairing complete. Certificates stored.\n", r.out)
        self.assertEqual(orig.operator, [])
        self.assertEqual(self.trusted(), {orig.serial: "orig"})
        self.assertRegex(self.key_text(), r"Private-Key: \(2048 bit")
        # Renewal: the original asks the running agent for a CSR of the same key and signs it.
        hostname, port, _ = self.serve_paired(r)
        done = orig.renew(port, hostname)
        self.assertEqual(orig.operator, [])
        self.assertEqual((done["status"], done["staged"]), ("ok", True), done)
        staged = self.agent.path("/var/lib/ctrl-exec-agent/agent.crt.staged")
        self.assertEqual(harness.sh("openssl x509 -noout -pubkey -in " + staged).stdout,
                         harness.sh("openssl pkey -pubout -in " + self.agent.path(
                             "/etc/ctrl-exec-agent/agent.key")).stdout)

    def test_rsa_sizes_on_request(self):
        for opt, bits in (("rsa:2048", 2048), ("rsa:3072", 3072)):
            with self.subTest(opt):
                for f in ("agent.crt", "agent.key", "ca.crt"):
                    if self.agent.exists("/etc/ctrl-exec-agent/" + f):
                        os.unlink(self.agent.path("/etc/ctrl-exec-agent/" + f))
                orig, r = self.pair("--key-type", opt)
                self.assertEqual(r.rc, 0, r)
                self.assertEqual(orig.operator, [])
                self.assertRegex(self.key_text(), r"Private-Key: \(%d bit" % bits)

    def test_an_ec_key_is_refused_with_the_original_message(self):
        orig, r = self.pair("--key-type", "ec")
        self.assertEqual(orig.operator, ["CSR public key too small (need >= 2048 bits)"])
        self.assertEqual(r.rc, 255, r)
        self.assertIn("Pairing denied: rejected by operator\n", r.err)
        self.assertFalse(self.agent.exists("/etc/ctrl-exec-agent/agent.crt"))

    def test_an_ec_agent_is_told_why_the_original_cannot_renew_it(self):
        # Paired with an EC key elsewhere (a C++ dispatcher signs it), then renewed by the
        # original: the operator sees the original's refusal, the agent logs why.
        orig = OriginalDispatcher(self)
        port = fake_dispatcher(self, orig.dir, lambda req: orig.pairing_answers(req, False))
        r = self.agent.run(self.pair_args(port, "--key-type", "ec"), timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("ASN1 OID: prime256v1", self.key_text())
        hostname, agent_port, serve = self.serve_paired(r)
        self.assertIsNone(orig.renew(agent_port, hostname))
        self.assertEqual(orig.operator, ["CSR public key too small (need >= 2048 bits)"])
        serve.wait_for_log("ACTION=renew-key ")
        self.assertRegex(serve.err(), r"ACTION=renew-key KEY=ec-256 PEER=127\.0\.0\.1 "
                                      r"REQID=5eed5eed5eed5eed WARNING=\"an original \(Perl\) "
                                      r"dispatcher refuses CSRs under 2048 bits")
        self.assertFalse(self.agent.exists("/var/lib/ctrl-exec-agent/agent.crt.staged"))

    def test_the_stand_in_refuses_as_the_original(self):
        # The stand-in's own rules, against CSRs the openssl CLI makes: a weak digest and a
        # small RSA key are refused, a good one is signed; a renewal CSR must carry the CN.
        d = tempfile.mkdtemp(prefix="cx-orig-")
        self.addCleanup(shutil.rmtree, d)
        def csr(newkey, digest):
            harness.sh("openssl req -new -nodes -newkey %s -keyout k.pem -out r.csr "
                       "-subj '/CN=web-01' -%s 2>/dev/null" % (newkey, digest), cwd=d)
            with open(os.path.join(d, "r.csr")) as f:
                return f.read()
        self.assertEqual(original_csr_refusal(csr("rsa:2048", "sha1")),
                         "CSR uses a weak or unrecognised signature algorithm "
                         "(sha1WithRSAEncryption)")
        self.assertEqual(original_csr_refusal(csr("rsa:1024", "sha256")),
                         "CSR public key too small (need >= 2048 bits)")
        good = csr("rsa:2048", "sha256")
        self.assertIsNone(original_csr_refusal(good))
        self.assertIsNone(original_csr_refusal(good, "web-01"))
        self.assertEqual(original_csr_refusal(good, "web-02"),
                         "CSR subject CN does not match the expected identity")


def fake_dispatcher(case, certdir, answers, hold=None, before=None):
    """A scripted pairing server: reads one request, then sends `answers` as framed responses.
    With `hold` (a threading.Event) the connection stays open until it is set; with `before`,
    nothing is answered until that one is set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certdir, "srv.crt"), os.path.join(certdir, "srv.key"))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    case.addCleanup(srv.close)

    def serve():
        while True:
            try:
                raw, _ = srv.accept()
            except OSError:
                return
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()  # the agent's reachability probe
                continue
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            head, body = buf.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            while len(body) < length:
                body += conn.recv(65536)
            if before is not None:
                before.wait(60)
            framed = b""
            for a in (answers(json.loads(body)) if callable(answers) else answers):
                b = json.dumps(a).encode()
                framed += (pairlib.FRAME % len(b)).encode() + b
            conn.sendall(framed)
            if hold is not None:
                hold.wait(60)
            conn.close()
            return
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


if __name__ == "__main__":
    harness.main()
