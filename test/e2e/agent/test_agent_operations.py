"""The agent under operation: SIGHUP reloads mid-traffic, /rotate-serial, rate limiting that
never throttles a trusted dispatcher and survives handshake floods, script_timeout and the
output cap, concurrency, and certificate renewal with promote-cert."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest.mock

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import ETC, STATE  # noqa: E402

MAP = STATE + "/ctrl-exec-dispatchers"


class Reload(agentlib.AgentTestCase):
    def test_sighup_picks_up_a_new_script_mid_traffic_while_a_long_run_completes(self):
        gate = self.agent.add_gate_script("long")
        self.agent.start()
        long_run = {}
        t = threading.Thread(target=lambda: long_run.update(
            r=self.agent.run("long", reqid="long")))
        t.start()
        gate.wait_started()
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
            before = len(statuses)
            self.agent.proc.signal(1)
            self.agent.wait_log("ACTION=reload DISPATCHERS=2 SCRIPTS=%d STATUS=ok"
                                % (len(self.agent.scripts) + 1))
            self.assertEqual(self.agent.run("late")[1]["stdout"], "late\n")
            # Traffic went on across the reload, and the long run is still waiting.
            agentlib.wait(lambda: len(statuses) > before + 2, what="pings after the reload")
            self.assertTrue(t.is_alive(), "the long run ended before it was released")
            names = [x["name"] for x in self.agent.get("/capabilities")[1]["scripts"]]
            self.assertIn("late", names)
        finally:
            gate.release()
            stop.set()
            pinger.join()
            t.join()
        self.assertEqual(long_run["r"][0], 200)
        self.assertEqual(long_run["r"][1]["stdout"], "released\n")
        self.assertEqual(long_run["r"][1]["exit"], 0)
        self.assertTrue(statuses)
        self.assertEqual(set(statuses), {200})
        self.assertTrue(self.agent.proc.alive())
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=long "
                            "SCRIPT=long")

    def test_sighup_reloads_the_revocation_list_and_agent_conf(self):
        self.agent.start()
        self.assertIn("ACTION=revoked-serials-absent PATH=%s"
                      % self.root.path(ETC + "/revoked-serials"), self.agent.log())
        self.assertEqual(self.agent.post("/ping", {})[0], 200)
        # The revocation list.
        self.root.write(ETC + "/revoked-serials", "7f3a9c\n")
        self.agent.proc.signal(1)
        agentlib.wait(lambda: len(self.agent.log_lines("reload")) == 1, what="reload 1")
        self.assertEqual(self.agent.post("/ping", {}),
                         (403, {"error": "certificate revoked"}, unittest.mock.ANY))
        self.assertEqual(self.agent.post("/ping", {}, who="disp2")[0], 200)
        os.unlink(self.root.path(ETC + "/revoked-serials"))
        # agent.conf: allowed_ips now shuts out loopback ...
        self.agent.write_conf("allowed_ips = 10.0.0.0/8\n")
        self.agent.proc.signal(1)
        agentlib.wait(lambda: len(self.agent.log_lines("reload")) == 2, what="reload 2")
        self.assertEqual(self.agent.post("/ping", {})[0], 0)
        self.agent.wait_log("ACTION=ip-block PEER=127.0.0.1")
        # ... and an auth hook is picked up without a restart.
        hook = self.root.write("/hook.sh", "#!/bin/sh\nexit 3\n", 0o755)
        self.agent.write_conf("auth_hook = %s\n" % hook)
        self.agent.proc.signal(1)
        agentlib.wait(lambda: len(self.agent.log_lines("reload")) == 3, what="reload 3")
        self.assertEqual(self.agent.post("/ping", {})[0], 200)
        self.assertEqual(self.agent.run("noop")[1]["error"],
                         "not authorised: insufficient privilege")
        self.assertEqual(len([l for l in self.agent.log_lines("reload") if "STATUS=ok" in l]), 3)

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

    def test_a_rotation_takes_effect_while_agent_conf_is_broken(self):
        # An operator is half-way through editing agent.conf when the dispatcher rotates: the
        # reload that follows the map edit fails, but the serial it announced must be trusted
        # (the original re-reads only the map on that SIGHUP).
        self.root.write(ETC + "/agent.conf", "this is broken\n")
        status, body, _ = self.rotate("19")
        self.assertEqual((status, body["status"]), (200, "ok"))
        self.agent.wait_log("STATUS=failed")
        self.assertEqual(self.agent.post("/ping", {"reqid": "r1"}, who="rotated")[0], 200)
        self.agent.wait_log("ACTION=ping DISPATCHER=disp-1 PEER=127.0.0.1 REQID=r1")
        # Everything else stays as it was.
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")
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

    def test_the_exemption_holds_above_the_volume_limit_while_failures_are_counted(self):
        self.agent.write_conf("rate_limit_volume = 3/60/300\nrate_limit_probe = 0/600/3600\n")
        self.agent.start()
        # Four times the volume limit of trusted connections, none throttled.
        for i in range(12):
            self.assertEqual(self.agent.post("/ping", {"reqid": "t%d" % i})[0], 200, i)
        self.assertEqual(self.agent.run("noop")[1]["exit"], 0)
        self.assertEqual(self.agent.log_lines("rate-block"), [])
        # Failed handshakes from the same IP are counted: the third one starts a block.
        for _ in range(2):
            self.assertEqual(self.agent.post("/ping", {}, who=None)[0], 0)
        self.assertEqual(self.agent.log_lines("rate-block"), [])
        self.assertEqual(self.agent.post("/ping", {}, who="foreign")[0], 0)
        self.agent.wait_log("ACTION=rate-block PEER=127.0.0.1 REASON=volume")
        # Blocked: a certificate of the right CA that is not in the map gets no answer at all
        # (not the 403 it got before) ...
        self.assertEqual(self.agent.post("/ping", {}, who="stranger")[0], 0)
        # ... while both trusted dispatchers carry on, as often as they like.
        for i in range(6):
            self.assertEqual(self.agent.post("/ping", {}, who=("disp", "disp2")[i % 2])[0], 200)
        self.assertEqual(len(self.agent.log_lines("rate-block")), 1)
        self.assertIn("ACTION=ping DISPATCHER=disp-2", self.agent.log())

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


class Resilience(agentlib.AgentTestCase):
    """Bad connections of every kind, all at once: none may stop or wedge the server."""

    def bad_connection(self, kind):
        port = self.agent.port
        try:
            if kind == "scan":  # connect and close
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
            elif kind == "reset":  # connect, then RST
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            elif kind == "garbage":  # plain HTTP on the TLS port
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    s.recv(100)
            elif kind == "half-hello":  # the start of a ClientHello, then silence and close
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            elif kind == "no-cert":
                self.agent.post("/ping", {}, who=None, timeout=10)
            elif kind == "foreign":
                self.agent.post("/ping", {}, who="foreign", timeout=10)
        except OSError:
            pass

    def test_a_concurrent_burst_of_bad_connections_then_good_requests(self):
        self.agent.start()
        kinds = ["scan", "reset", "garbage", "half-hello", "no-cert", "foreign"] * 6
        threads = [threading.Thread(target=self.bad_connection, args=(k,)) for k in kinds]
        good = []
        threads.append(threading.Thread(target=lambda: good.append(
            self.agent.run("echo-args", ["mid-burst"])[1])))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(self.agent.proc.alive(), self.agent.log())
        self.assertEqual(good[0]["stdout"], "argc: 1\n[mid-burst]\n")
        status, body, _ = self.agent.post("/ping", {"reqid": "after-burst"})
        self.assertEqual((status, body["reqid"]), (200, "after-burst"))
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")
        self.agent.wait_log("ACTION=tls-failure PEER=127.0.0.1")
        self.assertNotIn("accept-fatal", self.agent.log())
        # A Perl dispatcher's request after all that is answered byte for byte as usual.
        head, _ = agentlib.split_response(self.agent.raw(
            agentlib.perl_request("POST", "/ping", b'{"reqid":"x"}')))
        self.assertTrue(head.startswith("HTTP/1.0 200 OK\r\n"), head)


    def test_stalled_clients_do_not_hold_up_others(self):
        self.agent.start()
        port = self.agent.port
        stalled = [socket.create_connection(("127.0.0.1", port))]  # no ClientHello
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a hello
        stalled.append(s)
        stalled.append(self.agent.tls_socket())  # handshake done, nothing sent
        s = self.agent.tls_socket()
        s.sendall(b"POST /run HTTP/1.0\r\nContent-Length: 100\r\n\r\n{\"scr")  # half a body
        stalled.append(s)
        for s in stalled:
            self.addCleanup(s.close)
        t0 = time.monotonic()
        for i in range(3):
            self.assertEqual(self.agent.post("/ping", {"reqid": "p%d" % i})[0], 200)
        self.assertEqual(self.agent.run("noop")[1]["stdout"], "ok\n")
        self.assertLess(time.monotonic() - t0, 8)


class Overload(agentlib.AgentTestCase):
    conf_extra = "max_children = 2\n"

    def test_requests_above_max_children_are_dropped_until_a_slot_frees(self):
        gate = self.agent.add_gate_script("hold")
        self.agent.start()
        results = []
        runs = [threading.Thread(target=lambda i=i: results.append(
            self.agent.run("hold", reqid="hold%d" % i))) for i in range(2)]
        for t in runs:
            t.start()
        try:
            gate.wait_started(2)
            status, _, _ = self.agent.post("/ping", {"reqid": "third"})
            self.assertEqual(status, 0, "closed without an answer")
            self.agent.wait_log("ACTION=overload LIVE=2 PEER=127.0.0.1")
            self.assertNotIn("REQID=third", self.agent.log())
        finally:
            gate.release()
            for t in runs:
                t.join()
        self.assertEqual(sorted(r[1]["stdout"] for r in results), ["released\n"] * 2)
        # The slots are free again.
        self.assertEqual(self.agent.post("/ping", {"reqid": "fourth"})[0], 200)
        self.assertTrue(self.agent.proc.alive())


class Stopping(agentlib.AgentTestCase):
    def start_held_run(self):
        gate = self.agent.add_gate_script("hold", then="echo finished")
        self.agent.start()
        result = {}
        t = threading.Thread(target=lambda: result.update(r=self.agent.run("hold", reqid="h1")))
        t.start()
        gate.wait_started()
        return gate, t, result

    def test_sigterm_lets_a_run_in_progress_finish(self):
        gate, t, result = self.start_held_run()
        proc = self.agent.proc
        proc.signal(signal.SIGTERM)
        agentlib.wait(lambda: not agentlib.harness.port_open(self.agent.port),
                      what="the listener to close")
        self.assertTrue(proc.alive(), "still serving the run in progress")
        gate.release()
        t.join()
        self.assertEqual((result["r"][0], result["r"][1]["stdout"]), (200, "finished\n"))
        self.assertEqual(proc.wait(10), 0)
        self.assertIn("ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=h1 SCRIPT=hold",
                      proc.err())

    def test_a_second_signal_stops_at_once(self):
        gate, t, result = self.start_held_run()
        proc = self.agent.proc
        proc.signal(signal.SIGTERM)
        agentlib.wait(lambda: not agentlib.harness.port_open(self.agent.port),
                      what="the listener to close")
        proc.signal(signal.SIGINT)
        self.assertEqual(proc.wait(10), 0)
        t.join()
        self.assertEqual(result["r"][0], 0, "the client gets no answer")
        # The script went with the agent.
        pid = gate.pids()[0]

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                return True
        agentlib.wait(gone, what="the script to be killed")


class StdinTimeout(agentlib.AgentTestCase):
    conf_extra = "stdin_timeout = 1\n"

    def test_a_script_that_does_not_read_stdin_gets_eof_after_stdin_timeout(self):
        # Reads nothing until released, then counts what it can still read before EOF.
        gate = self.agent.add_gate_script("deaf", then="wc -c | tr -d ' '")
        self.agent.start()
        args = ["%d" % i + "x" * 80000 for i in range(4)]  # a context far above a pipe buffer
        body = json.dumps({"script": "deaf", "args": args, "reqid": "deaf1"}).encode()
        result = {}
        # Too large for a curl command line: sent over a TLS socket instead.
        t = threading.Thread(target=lambda: result.update(r=agentlib.split_response(
            self.agent.raw(agentlib.perl_request("POST", "/run", body), timeout=60))))
        t.start()
        try:
            gate.wait_started()
            # Logged when the agent gives up on stdin, while the script is still running.
            self.agent.wait_log("ACTION=stdin-timeout BYTES=")
            self.assertTrue(t.is_alive())
        finally:
            gate.release()
            t.join()
        head, payload = result["r"]
        self.assertTrue(head.startswith("HTTP/1.0 200 OK"), head)
        reply = json.loads(payload)
        # Not killed: the script carried on, read what had been written, then saw EOF.
        self.assertEqual((reply["exit"], reply["reqid"]), (0, "deaf1"))
        read = int(reply["stdout"])
        context = len(json.dumps({"script": "deaf", "args": args, "reqid": "deaf1",
                                  "peer_ip": "127.0.0.1", "username": "", "token": "",
                                  "dispatcher": "disp-1", "timestamp": "2000-01-01T00:00:00Z"},
                                 separators=(",", ":")))
        self.assertLess(read, context)
        self.agent.wait_log("ACTION=stdin-timeout BYTES=%d" % (context - read))


class Limits(agentlib.AgentTestCase):
    conf_extra = "script_timeout = 1\nscript_output_limit = 5\n"

    def test_script_timeout_kills_the_process_group(self):
        pidfile = self.root.path("/forker.pid")
        self.agent.add_script_file("forker", "#!/bin/sh\nsleep 30 &\necho $! > %s\nsleep 30\n"
                                   % pidfile)
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
        # The script's own child went with it: the whole process group was killed.
        with open(pidfile) as f:
            child = int(f.read())

        def gone():
            try:
                with open("/proc/%d/stat" % child) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                return True
        agentlib.wait(gone, what="the background child of the timed-out script to die")

    def test_output_cap(self):
        self.agent.start()
        body = self.agent.run("echo-args", ["abcdefgh"])[1]
        self.assertEqual((body["stdout"], body["truncated"], body["exit"]), ("argc:", True, 0))
        self.assertNotIn("truncated", self.agent.run("noop")[1])
        self.assertNotIn("timed_out", self.agent.run("noop")[1])
        # Per stream: 10 MiB on stderr is read and discarded beyond the cap, and the script
        # is not held up by it.
        body = self.agent.run("big-stderr")[1]
        self.assertEqual((body["stdout"], body["stderr"], body["truncated"], body["exit"]),
                         ("done\n", "eeeee", True, 0))
        # Exactly at the cap is not truncated.
        self.agent.add_script_file("five", "#!/bin/sh\nprintf 12345\nprintf abcde >&2\n")
        self.agent.write_allowlist(list(self.agent.scripts) + ["five"])
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        body = self.agent.run("five")[1]
        self.assertEqual((body["stdout"], body["stderr"]), ("12345", "abcde"))
        self.assertNotIn("truncated", body)


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

    def test_promote_refuses_a_staged_cert_that_is_not_a_regular_file(self):
        # promote-cert runs as root; the staging directory belongs to the agent's user. A link
        # (here to the live cert, which would pass every check) or a FIFO planted as the staged
        # cert is removed unread, and never blocks the agent's start.
        live = self.root.read(ETC + "/agent.crt")
        staged = self.root.path(STATE + "/agent.crt.staged")
        for plant in (lambda: os.symlink(self.root.path(ETC + "/agent.crt"), staged),
                      lambda: os.mkfifo(staged, 0o600)):
            plant()
            r = self.root.run(["ctrl-exec-agent", "promote-cert"], timeout=10)
            self.assertEqual(r.rc, 0, r.err)
            self.assertFalse(os.path.lexists(staged))
            self.assertEqual(self.root.read(ETC + "/agent.crt"), live)
            self.assertIn("ACTION=cert-promote ERROR=\"cannot read '%s': not a regular file\""
                          % staged, r.err)
            self.assertNotIn("STATUS=installed", r.err)


if __name__ == "__main__":
    agentlib.harness.main()
