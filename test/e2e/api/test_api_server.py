"""ctrl-exec-api without agents: framing, the auth gate, limits, keep-alive, TLS, graceful stop.

Every test runs the real binary in a temp root on a free loopback port and uses curl (or a raw
socket where curl cannot do it) as the client.
"""
import json
import os
import signal
import socket
import subprocess

import apifix
from apifix import harness


class ApiServer(harness.TestCase):
    def start(self, **keys):
        self.port = harness.free_port()
        apifix.write_config(self.root, self.port, **keys)
        self.api = apifix.start_api(self.root, self.port)
        return self.api

    def get(self, path, **kw):
        return apifix.curl(apifix.url(self.port, path), timeout=10, **kw)

    # --- routes that need no agent -------------------------------------------------------------

    def test_health_index_and_404_bodies(self):
        api = self.start(api_auth_default="allow")
        self.assertIn("ctrl-exec API listening on 127.0.0.1:%d (plain HTTP)" % self.port, api.out())
        api.wait_for_log("ACTION=api-start BIND=127.0.0.1 PORT=%d TLS=no" % self.port)

        raw = apifix.raw_exchange(self.port, b"GET /health HTTP/1.0\r\n\r\n")
        self.assertEqual(raw, b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n'
                              b'Content-Length: 30\r\n\r\n{"ok":true,"version":"0.12.3"}')
        api.wait_for_log("ACTION=api-request LEN=0 METHOD=GET PATH=/health PEER=127.0.0.1")

        status, body, _ = self.get("/")
        self.assertEqual(status, 200)
        index = json.loads(body)
        self.assertEqual(index["name"], "ctrl-exec-api")
        self.assertEqual(index["version"], "0.12.3")
        self.assertEqual(index["spec"], "/openapi.json")
        self.assertEqual(index["live_spec"], "/openapi-live.json")
        self.assertNotIn({"method": "GET", "path": "/"}, index["endpoints"])
        self.assertIn({"method": "GET", "path": "/health"}, index["endpoints"])

        rows = [
            ("GET", "/nope", "no route for GET /nope"),
            ("DELETE", "/health", "no route for DELETE /health"),
            ("GET", "/health?x=1", "no route for GET /health?x=1"),
            ("get", "/health/", "no route for GET /health/"),
        ]
        for method, path, detail in rows:
            status, body, head = self.get(path, method=method)
            self.assertTrue(head.startswith("HTTP/1.0 404 Not Found"), head)
            self.assertEqual(body, json.dumps({"ok": False, "error": "not found", "detail": detail},
                                              separators=(",", ":")))

    def test_framing_errors_431_413_and_empty(self):
        self.start(api_auth_default="allow")
        headers = ["X-H%d: v" % i for i in range(33)]
        status, body, head = self.get("/health", headers=headers)
        self.assertEqual(status, 431)
        self.assertTrue(head.startswith("HTTP/1.0 431 Request Header Fields Too Large"))
        self.assertEqual(json.loads(body), {"ok": False, "error": "request header fields too large",
                                            "detail": "more than 32 header lines"})
        # Exactly 32 header lines are fine (curl adds Host, User-Agent and Accept).
        status, _, _ = self.get("/health", headers=["X-H%d: v" % i for i in range(29)])
        self.assertEqual(status, 200)

        big = self.root.write("/tmp/big.json", '{"hosts":["a"],"pad":"%s"}' % ("x" * 1048576))
        status, body, head = self.get("/ping", data="@" + big)
        self.assertEqual(status, 413)
        self.assertTrue(head.startswith("HTTP/1.0 413 Content Too Large"))
        self.assertEqual(json.loads(body), {"ok": False, "error": "payload too large",
                                            "detail": "body exceeds 1048576 bytes"})
        # 413 is decided from Content-Length, before any of the body is read.
        raw = apifix.raw_exchange(self.port, b"POST /run HTTP/1.0\r\nContent-Length: 2000000\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.0 413 Content Too Large\r\n"), raw)

        raw = apifix.raw_exchange(self.port, b"")
        self.assertEqual(raw, b'HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\n'
                              b'Content-Length: 59\r\n\r\n'
                              b'{"ok":false,"error":"bad request","detail":"empty request"}')

    # --- the pre-route auth gate ----------------------------------------------------------------

    def test_no_hook_defaults(self):
        rows = [
            ({}, 403, {"ok": False, "error": "no auth hook configured", "code": 1}),
            ({"api_auth_default": "deny"}, 403,
             {"ok": False, "error": "no auth hook configured", "code": 1}),
            ({"api_auth_default": "ALLOW"}, 200, None),
            ({"api_auth_default": "yes"}, 403,
             {"ok": False, "error": "no auth hook configured", "code": 1}),
            ({"auth_deny_generic": "yes"}, 403, {"ok": False, "error": "forbidden"}),
        ]
        for keys, want_status, want_body in rows:
            with self.subTest(keys=keys):
                api = self.start(**keys)
                for path in ("/health", "/nope", "/"):
                    status, body, _ = self.get(path)
                    if want_status == 200:
                        self.assertIn(status, (200, 404))
                    else:
                        self.assertEqual(status, want_status, path)
                        self.assertEqual(json.loads(body), want_body)
                reason = "no-hook-allow" if want_status == 200 else "no-hook-deny"
                api.wait_for_log("ACTION=auth AUTHACTION=api DISPATCHER= IP=127.0.0.1 "
                                 "REASON=%s RESULT=%s USER=(none)"
                                 % (reason, "pass" if want_status == 200 else "deny"))
                api.stop()

    def test_hook_decides(self):
        env_file = self.root.path("/tmp/hook-env")
        stdin_file = self.root.path("/tmp/hook-stdin")
        os.makedirs(os.path.dirname(env_file), exist_ok=True)
        hook = apifix.write_hook(self.root, (
            'env | grep ^ENVEXEC_ | sort > "%s"\n'
            'cat > "%s"\n'
            'case "$ENVEXEC_TOKEN" in\n'
            '  ok) exit 0;;\n'
            '  one) exit 1;;\n'
            '  two) exit 2;;\n'
            '  three) exit 3;;\n'
            '  ninety) exit 99;;\n'
            '  slow) sleep 30; exit 0;;\n'
            '  killed) kill -9 $$;;\n'
            'esac\n'
            'exit 1') % (env_file, stdin_file))
        # api_auth_default has no effect once a hook is configured.
        api = self.start(auth_hook=hook, auth_hook_timeout=1, api_auth_default="allow")
        rows = [
            ("ok", 200, None),
            ("one", 403, {"ok": False, "error": "denied", "code": 1}),
            ("two", 403, {"ok": False, "error": "bad credentials", "code": 2}),
            ("three", 403, {"ok": False, "error": "insufficient privilege", "code": 3}),
            ("ninety", 403, {"ok": False, "error": "hook exited 99", "code": 99}),
            ("slow", 403, {"ok": False, "error": "denied", "code": 1}),
            # The original read a hook killed by a signal as exit 0 (allow); we deny.
            ("killed", 403, {"ok": False, "error": "hook killed by signal 9", "code": 1}),
        ]
        for token, want_status, want_body in rows:
            with self.subTest(token=token):
                start = apifix.monotonic()
                # The gate takes the token from the JSON body, on every route.
                status, body, _ = self.get("/health", method="GET", data={"token": token})
                self.assertEqual(status, want_status, body)
                if want_body:
                    self.assertEqual(json.loads(body), want_body)
                if token == "slow":
                    self.assertLess(apifix.monotonic() - start, 8)
        api.wait_for_log("ACTION=auth-hook-timeout TIMEOUT=1")
        api.wait_for_log("ACTION=auth AUTHACTION=api IP=127.0.0.1 REASON=\"bad credentials\" "
                         "RESULT=deny USER=(none)")
        # The Authorization header is not the gate's token.
        status, _, _ = self.get("/health", headers=["Authorization: Bearer ok"])
        self.assertEqual(status, 403)

        status, _, _ = self.get("/health", method="GET", data={"token": "ok"})
        self.assertEqual(status, 200)
        env = open(env_file).read()
        for line in ("ENVEXEC_ACTION=api", "ENVEXEC_TOKEN=ok", "ENVEXEC_SOURCE_IP=127.0.0.1",
                     "ENVEXEC_SCRIPT=", "ENVEXEC_HOSTS=", "ENVEXEC_USERNAME=", "ENVEXEC_REQID=",
                     "ENVEXEC_DISPATCHER="):
            self.assertIn(line + "\n", env)
        stdin = json.loads(open(stdin_file).read())
        self.assertEqual(stdin["action"], "api")
        self.assertEqual(stdin["hosts"], [])
        self.assertIsNone(stdin["submitter"])

        # auth_deny_generic hides the reason and the code.
        api.stop()
        self.start(auth_hook=hook, auth_deny_generic="1")
        status, body, _ = self.get("/health", method="GET", data={"token": "three"})
        self.assertEqual((status, json.loads(body)), (403, {"ok": False, "error": "forbidden"}))

    def test_hook_not_executable_denies(self):
        hook = self.root.write("/etc/ctrl-exec/auth-hook", "#!/bin/sh\nexit 0\n", 0o644)
        api = self.start(auth_hook=hook)
        status, body, _ = self.get("/health")
        self.assertEqual(status, 403)
        self.assertEqual(json.loads(body), {"ok": False, "code": 1,
                                            "error": "auth hook not found or not executable: "
                                                     + hook})
        api.wait_for_log("ACTION=auth HOOK=%s REASON=hook-not-executable RESULT=error" % hook)

    # --- concurrency, slow clients, keep-alive ----------------------------------------------------

    def test_overload_503_beyond_api_max_children(self):
        hook, started, release = apifix.blocking_hook(self.root)
        api = self.start(auth_hook=hook, auth_hook_timeout=30, api_max_children=2)
        held = [apifix.popen_curl(self.port, "/health") for _ in range(2)]
        harness.wait_until(lambda: apifix.count_files(started) == 2, 10, what="two hooks running")
        status, body, head = self.get("/health")
        self.assertEqual(status, 503)
        self.assertTrue(head.startswith("HTTP/1.0 503 Service Unavailable"))
        self.assertEqual(json.loads(body), {"ok": False, "error": "service unavailable",
                                            "detail": "too many concurrent requests"})
        api.wait_for_log("ACTION=api-overload LIVE=2 PEER=127.0.0.1")
        open(release, "w").close()
        for p in held:
            out, err = p.communicate(timeout=20)
            self.assertEqual(apifix.status_of(out), 200, err)
        # Idle connections are not requests in progress: with the two slots free, a request
        # gets through even while other clients hold open connections.
        idle = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(3)]
        try:
            status, _, _ = self.get("/health")
            self.assertEqual(status, 200)
        finally:
            for s in idle:
                s.close()

    def test_stalled_client_does_not_block_others_and_is_dropped(self):
        api = self.start(api_auth_default="allow", api_request_timeout=2)
        stalled = socket.create_connection(("127.0.0.1", self.port))
        stalled.sendall(b"POST /run HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"hos")
        try:
            for _ in range(5):
                status, _, _ = self.get("/health")
                self.assertEqual(status, 200)
            stalled.settimeout(10)
            start = apifix.monotonic()
            self.assertEqual(apifix.read_all(stalled), b"")  # dropped without an answer
            self.assertLess(apifix.monotonic() - start, 8)
        finally:
            stalled.close()
        self.assertTrue(api.alive())

    def test_keep_alive_on_request_only(self):
        self.start(api_auth_default="allow")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            for path in ("/health", "/nope", "/"):
                s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
                           % path).encode())
                head, body = apifix.read_response(s, ("GET", path))
                self.assertIn("\r\nConnection: keep-alive", head)
                json.loads(body)
            # A request without the header gets the original's framing and the close.
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = apifix.read_response(s, ("GET", "/health"))
            self.assertNotIn("Connection:", head)
            self.assertEqual(apifix.read_all(s), b"")
        # curl reuses the connection when asked to keep it.
        p = subprocess.run(["curl", "-sv", "-H", "Connection: keep-alive",
                            apifix.url(self.port, "/health"), apifix.url(self.port, "/")],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("Re-using existing connection", p.stderr)

    # --- TLS ----------------------------------------------------------------------------------------

    def test_tls_mode_and_missing_file_fallback(self):
        d = self.root.path("/etc/ctrl-exec/api-tls")
        harness.openssl_ca(d)
        harness.openssl_leaf(d, "api", "localhost", "1234abcd")
        api = self.start(api_auth_default="allow", api_cert=os.path.join(d, "api.crt"),
                         api_key=os.path.join(d, "api.key"))
        self.assertIn("(TLS)", api.out())
        api.wait_for_log("TLS=yes")
        # The certificate names localhost: curl verifies it against our CA and that name.
        status, body, head = apifix.curl(
            "https://localhost:%d/health" % self.port, cacert=os.path.join(d, "ca.crt"),
            timeout=10, extra=("--resolve", "localhost:%d:127.0.0.1" % self.port))
        self.assertEqual((status, json.loads(body)["ok"]), (200, True))
        self.assertTrue(head.startswith("HTTP/1.0 200 OK"))
        status, _, _ = self.get("/health")  # plain HTTP to a TLS port: no answer
        self.assertEqual(status, 0)
        api.stop()

        # A configured file that is missing: plain HTTP, as the original, but with a warning.
        api = self.start(api_auth_default="allow", api_cert=os.path.join(d, "api.crt"),
                         api_key=os.path.join(d, "missing.key"))
        self.assertIn("(plain HTTP)", api.out())
        api.wait_for_log("ACTION=api-tls-missing FALLBACK=\"plain HTTP\" KEY=api_key PATH=%s "
                         "REASON=\"file not found\"" % os.path.join(d, "missing.key"))
        status, _, _ = self.get("/health")
        self.assertEqual(status, 200)
        api.stop()

        # A key that cannot be loaded is fatal, with the original's message.
        bad = self.root.write("/etc/ctrl-exec/api-tls/bad.key", "not a key\n")
        self.port = harness.free_port()
        apifix.write_config(self.root, self.port, api_cert=os.path.join(d, "api.crt"),
                            api_key=bad)
        r = self.root.run(["ctrl-exec-api", "--config", self.root.path(apifix.CONF)], timeout=10)
        self.assertEqual(r.rc, 78)
        self.assertIn("Cannot start TLS API server on 127.0.0.1:%d: " % self.port, r.err)

    # --- startup and stop ---------------------------------------------------------------------------

    def test_startup_errors(self):
        r = self.root.run(["ctrl-exec-api", "--bogus"], timeout=10)
        self.assertEqual(r.rc, 2)
        self.assertIn("Usage: ctrl-exec-api [--config <path>]", r.err)
        r = self.root.run(["ctrl-exec-api", "--config", self.root.path("/nope.conf")], timeout=10)
        self.assertEqual(r.rc, 78)
        self.assertIn("Cannot open config '%s'" % self.root.path("/nope.conf"), r.err)
        conf = self.root.write(apifix.CONF, "cert = /x.crt\nkey = /x.key\n")
        r = self.root.run(["ctrl-exec-api", "--config", conf], timeout=10)
        self.assertEqual(r.rc, 78)
        self.assertIn("Missing 'ca' in %s" % conf, r.err)
        # The port is taken.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            apifix.write_config(self.root, port)
            r = self.root.run(["ctrl-exec-api", "--config", self.root.path(apifix.CONF)],
                              timeout=10)
            self.assertEqual(r.rc, 1)
            self.assertIn("Cannot start API server on 127.0.0.1:%d: address already in use"
                          % port, r.err)

    def test_sigterm_finishes_in_flight_requests_then_exits_0(self):
        hook, started, release = apifix.blocking_hook(self.root)
        api = self.start(auth_hook=hook, auth_hook_timeout=30)
        in_flight = apifix.popen_curl(self.port, "/health")
        harness.wait_until(lambda: apifix.count_files(started) == 1, 10, what="hook running")
        api.signal(signal.SIGTERM)
        harness.wait_until(lambda: not harness.port_open(self.port), 5, what="listener closed")
        self.assertTrue(api.alive())
        open(release, "w").close()
        out, err = in_flight.communicate(timeout=20)
        self.assertEqual(apifix.status_of(out), 200, out + err)
        self.assertEqual(api.wait(10), 0)
        self.assertTrue(api.out().endswith("\nAPI server stopped.\n"), api.out())
        self.assertIn("ACTION=api-stop", api.err())

    def test_sigint_with_a_stuck_request_stops_after_the_grace_period(self):
        hook, started, _ = apifix.blocking_hook(self.root)
        api = self.start(auth_hook=hook, auth_hook_timeout=60, api_shutdown_grace=1)
        stuck = apifix.popen_curl(self.port, "/health")
        harness.wait_until(lambda: apifix.count_files(started) == 1, 10, what="hook running")
        start = apifix.monotonic()
        api.signal(signal.SIGINT)
        self.assertEqual(api.wait(10), 0)
        self.assertLess(apifix.monotonic() - start, 5)
        self.assertIn("ACTION=api-stop-timeout INFLIGHT=1", api.err())
        self.assertIn("ACTION=api-stop", api.err())
        out, _ = stuck.communicate(timeout=10)
        self.assertEqual(apifix.status_of(out), 0)  # dropped, never half-answered
        # An idle server stops at once.
        api = self.start(api_auth_default="allow")
        api.signal(signal.SIGTERM)
        self.assertEqual(api.wait(5), 0)


if __name__ == "__main__":
    harness.main()
