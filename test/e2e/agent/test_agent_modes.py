"""The agent's modes and their exact output and exit codes: --version, usage, config errors
(78), unpaired (78), pairing-status, self-check, self-ping, cert-staged, paired."""
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import ETC, STATE  # noqa: E402

NOTAFTER = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT"


class Cli(agentlib.AgentTestCase):
    def test_version(self):
        for args in (["--version"], ["serve", "--version"]):
            r = self.root.run(["ctrl-exec-agent"] + args)
            self.assertEqual((r.rc, r.out), (0, "ctrl-exec-agent 0.12.3\n"))
        r = self.root.run(["cea", "--vers"])
        self.assertEqual((r.rc, r.out), (0, "ctrl-exec-agent 0.12.3\n"))

    def test_no_mode_prints_usage_on_stdout(self):
        r = self.root.run(["ctrl-exec-agent"])
        self.assertEqual(r.rc, 0)
        self.assertIn("Usage: ctrl-exec-agent <mode>", r.out)
        for mode in ("serve", "request-pairing", "pairing-status", "self-check", "self-ping"):
            self.assertIn("  " + mode, r.out)
        self.assertNotRegex(r.out, r"(?m)^  (promote-cert|cert-staged|paired|__async-job)\b")
        self.assertNotIn("__async-job", r.out)

    def test_unknown_mode_and_bad_options(self):
        r = self.root.run(["ctrl-exec-agent", "frobnicate"])
        self.assertNotEqual(r.rc, 0)
        self.assertIn("Unknown mode 'frobnicate'", r.err)
        self.assertIn("Usage:", r.err)
        for args in (["serve", "--bogus"], ["--port", "x", "serve"], ["serve", "extra"],
                     ["--timeout"]):
            r = self.root.run(["ctrl-exec-agent"] + args)
            self.assertEqual(r.rc, 2, args)
            self.assertEqual(r.out, "", args)
            self.assertIn("Usage:", r.err)
        for args in (["request-pairing", "--dispatcher", "d", "--lookup-by", "dns"],
                     ["request-pairing"],
                     ["request-pairing", "--dispatcher", "d", "--background", "--timeout", "601"]):
            r = self.root.run(["ctrl-exec-agent"] + args)
            self.assertEqual(r.rc, 255, args)  # fatal, as the original's die
        r = self.root.run(["ctrl-exec-agent", "request-pairing", "--dispatcher", "d",
                           "--lookup-by", "dns"])
        self.assertIn("must be 'ip' or 'hostname'", r.err)

    def test_options_before_or_after_the_mode(self):
        cfg = self.root.path(ETC + "/agent.conf")
        for args in (["--config", cfg, "paired"], ["paired", "--config=" + cfg],
                     ["paired", "-conf", cfg]):
            self.assertEqual(self.root.run(["ctrl-exec-agent"] + args).rc, 0, args)


class Startup(agentlib.AgentTestCase):
    def serve(self):
        return self.root.run(["ctrl-exec-agent", "serve"], timeout=20)

    def test_config_errors_exit_78(self):
        cases = [
            ("port = 1\ncert = a\nkey = b\n", "Missing required config key 'ca'"),
            ("port = x\ncert = a\nkey = b\nca = c\n", "port"),
            ("port = 1\ncert = a\nkey = b\nca = c\nthis is not a key line\n",
             "Malformed config line"),
            ("port = 1\ncert = a\nkey = b\nca = c\nauth_hook = /nonexistent\n",
             "auth_hook '/nonexistent' is not executable"),
        ]
        for text, needle in cases:
            self.root.write(ETC + "/agent.conf", text)
            r = self.serve()
            self.assertEqual(r.rc, 78, text)
            self.assertTrue(r.err.startswith(
                "ctrl-exec-agent: cannot start - configuration error.\n"), r.err)
            self.assertIn(needle, r.err)
            self.assertIn(self.root.path(ETC + "/agent.conf"), r.err)
            self.assertIn(self.root.path(ETC + "/scripts.conf"), r.err)
            self.assertIn("comments must be on their own line", r.err)

    def test_undefined_profile_exits_78(self):
        self.agent.write_allowlist(["noop"], "fail = %s profile=web\n" % self.agent.script_path("fail"))
        r = self.serve()
        self.assertEqual(r.rc, 78)
        self.assertIn("script(s) reference an undefined profile: fail -> web", r.err)

    def test_missing_allowlist_exits_78(self):
        os.unlink(self.root.path(ETC + "/scripts.conf"))
        r = self.serve()
        self.assertEqual(r.rc, 78)
        self.assertIn("Cannot open allowlist", r.err)

    def test_unpaired_exits_78_with_guidance(self):
        os.unlink(self.root.path(ETC + "/agent.crt"))
        r = self.serve()
        self.assertEqual(r.rc, 78)
        self.assertIn("has not been paired yet", r.err)
        self.assertIn(self.root.path(ETC + "/agent.crt"), r.err)
        self.assertIn("sudo ctrl-exec-agent request-pairing --dispatcher <dispatcher-host>", r.err)
        self.assertIn("ctrl-exec-agent pairing-status", r.err)

    def test_profiles_without_executor_are_warned_about(self):
        self.agent.write_conf("[profile web]\nrun_as = www-data\n")
        self.agent.write_allowlist(["noop"],
                                   "fail = profile=web %s\n" % self.agent.script_path("fail"))
        self.agent.start()
        self.assertIn("profiles are NOT enforced", self.agent.log())
        self.assertIn("fail -> web", self.agent.log())

    def test_bind_failure_is_non_zero(self):
        self.agent.start()
        r = self.serve()
        self.assertEqual(r.rc, 1)
        self.assertIn("cannot listen on port %d" % self.agent.port, r.err)


class Status(agentlib.AgentTestCase):
    def test_pairing_status(self):
        r = self.root.run(["ctrl-exec-agent", "pairing-status"])
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.out, r"^Paired\. Certificate expires: %s\n$" % NOTAFTER)
        os.unlink(self.root.path(ETC + "/ca.crt"))
        r = self.root.run(["ctrl-exec-agent", "pairing-status"])
        self.assertEqual((r.rc, r.out), (1, "Not paired. Reason: missing file: %s\n"
                                         % self.root.path(ETC + "/ca.crt")))
        self.root.write(ETC + "/ca.crt", "x")
        self.root.write(ETC + "/agent.crt", "not a cert")
        r = self.root.run(["ctrl-exec-agent", "pairing-status"])
        self.assertEqual((r.rc, r.out), (1, "Not paired. Reason: cannot parse cert: %s\n"
                                         % self.root.path(ETC + "/agent.crt")))

    def test_paired_and_cert_staged(self):
        self.assertEqual(self.root.run(["ctrl-exec-agent", "paired"]).rc, 0)
        self.assertEqual(self.root.run(["ctrl-exec-agent", "cert-staged"]).rc, 1)
        self.root.write(STATE + "/agent.crt.staged", "x")
        self.assertEqual(self.root.run(["ctrl-exec-agent", "cert-staged"]).rc, 0)
        os.unlink(self.root.path(ETC + "/agent.key"))
        self.assertEqual(self.root.run(["ctrl-exec-agent", "paired"]).rc, 1)
        self.root.write(ETC + "/agent.conf", "broken line\n")
        self.assertEqual(self.root.run(["ctrl-exec-agent", "paired"]).rc, 1)
        self.assertEqual(self.root.run(["ctrl-exec-agent", "cert-staged"]).rc, 1)

    def test_self_check(self):
        os.chmod(self.agent.script_path("fail"), 0o644)
        r = self.root.run(["ctrl-exec-agent", "self-check"])
        self.assertEqual(r.rc, 0, r.err)
        lines = r.out.splitlines()
        self.assertEqual(lines[0], "Checking config...")
        self.assertEqual(lines[1], "  Config OK (port %d)" % self.agent.port)
        self.assertEqual(lines[2], "  Allowlist OK (%d scripts)" % len(self.agent.scripts))
        self.assertRegex(lines[3], r"^  Certs OK \(expires %s\)$" % NOTAFTER)
        scripts = lines[4:4 + len(self.agent.scripts)]
        self.assertEqual(scripts, ["  Script '%s': %s  (profile: default) [%s]"
                                   % (n, self.agent.script_path(n),
                                      "NOT EXECUTABLE" if n == "fail" else "ok")
                                   for n in sorted(self.agent.scripts)])
        self.assertEqual(lines[-1], "Self-check complete.")

    def test_self_check_reports_problems(self):
        self.agent.write_allowlist(["noop"], "fail = %s profile=web\n" % self.agent.script_path("fail"))
        os.unlink(self.root.path(ETC + "/agent.key"))
        r = self.root.run(["ctrl-exec-agent", "self-check"])
        self.assertEqual(r.rc, 0)
        self.assertIn("  Certs: NOT paired - missing file: %s\n" % self.root.path(ETC + "/agent.key"),
                      r.out)
        self.assertIn("  Profile error: undefined profile(s) referenced: fail -> web\n", r.out)
        self.root.write(ETC + "/agent.conf", "nonsense\n")
        r = self.root.run(["ctrl-exec-agent", "self-check"])
        self.assertEqual(r.rc, 1)
        self.assertTrue(r.out.startswith("Checking config...\n  Config error: "), r.out)


class SelfPing(agentlib.AgentTestCase):
    def expect_head(self, out):
        lines = out.splitlines()
        self.assertEqual(lines[0], "Checking config...")
        self.assertEqual(lines[1], "  Config OK (port %d)" % self.agent.port)
        self.assertRegex(lines[2], r"^  Paired: yes \(cert expires %s\)$" % NOTAFTER)
        self.assertEqual(lines[3], "Connecting to 127.0.0.1:%d..." % self.agent.port)
        return lines[4:]

    def test_against_a_running_agent(self):
        self.agent.start()
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 0, r.out + r.err)
        self.assertEqual(self.expect_head(r.out), [
            "  Port %d: listening" % self.agent.port,
            "  mTLS handshake: OK",
            "  Ping response: 403 serial mismatch (expected - agent is running and enforcing "
            "policy)",
            "Self-ping complete."])
        # With the agent's own serial trusted the ping itself succeeds.
        self.agent.write_map("7f3a9c disp-1\n0a11 self\n")
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 0)
        self.assertIn("  Ping response: OK\nSelf-ping complete.\n", r.out)

    def test_an_unexpected_answer_exits_1(self):
        # The agent's own serial revoked: the agent answers, but neither "ok" nor a mismatch.
        self.agent.write_map("7f3a9c disp-1\n0a11 self\n")
        self.root.write(ETC + "/revoked-serials", "0a11\n")
        self.agent.start()
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.expect_head(r.out), [
            "  Port %d: listening" % self.agent.port,
            "  mTLS handshake: OK",
            '  Ping response: unexpected - {"error":"certificate revoked"}'])

    def test_a_port_that_does_not_speak_tls_fails_the_handshake(self):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.agent.port))
        srv.listen(4)
        self.addCleanup(srv.close)

        def serve():
            try:
                conn, _ = srv.accept()
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                conn.close()
            except OSError:
                pass
        threading.Thread(target=serve, daemon=True).start()
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 1, r)
        tail = self.expect_head(r.out)
        self.assertEqual(len(tail), 1, tail)
        self.assertTrue(tail[0].startswith("  mTLS handshake failed: "), tail)

    def test_nothing_listening(self):
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 1)
        self.assertEqual(self.expect_head(r.out),
                         ["  Port %d: not listening - is the agent running?" % self.agent.port])

    def test_unpaired(self):
        os.unlink(self.root.path(ETC + "/agent.crt"))
        r = self.root.run(["ctrl-exec-agent", "self-ping"])
        self.assertEqual(r.rc, 1)
        self.assertIn("  Paired: no - missing file: %s\n  Cannot self-ping: agent not paired.\n"
                      % self.root.path(ETC + "/agent.crt"), r.out)


if __name__ == "__main__":
    agentlib.harness.main()
