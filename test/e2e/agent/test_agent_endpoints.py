"""Every 7443 endpoint of a real `ctrl-exec-agent serve`, as curl and the Perl dispatcher's
request form reach it: exact status codes, JSON fields, framing, script contract, log lines."""
import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(__file__))
import agentlib  # noqa: E402
from agentlib import ETC, STATE  # noqa: E402

OPENSSL_TIME = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Endpoints(agentlib.AgentTestCase):
    def setUp(self):
        super().setUp()
        self.agent.start(env={"FOO_SECRET": "leak", "LD_PRELOAD": "", "HOME": "/home/test",
                              "LANG": "C.UTF-8"})

    # --- /ping -------------------------------------------------------------------------

    def test_ping(self):
        status, body, head = self.agent.post("/ping", {"reqid": "00000000deadbeef"})
        self.assertEqual(status, 200)
        self.assertTrue(head.startswith("HTTP/1.0 200 OK\r\n"), head)
        self.assertEqual(set(body), {"status", "host", "version", "expiry", "staged", "reqid"})
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["version"], "0.12.3")
        self.assertRegex(body["expiry"], OPENSSL_TIME)
        self.assertIs(body["staged"], False)
        self.assertEqual(body["reqid"], "00000000deadbeef")
        self.agent.wait_log("ACTION=ping DISPATCHER=disp-1 PEER=127.0.0.1 REQID=00000000deadbeef")

    def test_ping_tolerates_a_missing_or_invalid_body(self):
        for body in (None, "not json", "[1]"):
            status, reply, _ = self.agent.post("/ping", body)
            self.assertEqual((status, reply["status"], reply["reqid"]), (200, "ok", ""), body)

    def test_ping_reports_a_staged_cert(self):
        self.root.write(STATE + "/agent.crt.staged", "x")
        self.assertIs(self.agent.post("/ping", {"reqid": "r"})[1]["staged"], True)

    def test_perl_dispatcher_request_form_gets_exact_http10_framing(self):
        body = b'{"reqid":"00000000deadbeef"}'
        raw = self.agent.raw(agentlib.perl_request("POST", "/ping", body))
        head, payload = agentlib.split_response(raw)
        lines = head.split("\r\n")
        self.assertEqual(lines[0], "HTTP/1.0 200 OK")
        self.assertEqual(lines[1], "Content-Type: application/json")
        self.assertEqual(lines[2], "Content-Length: %d" % len(payload))
        self.assertEqual(len(lines), 3)
        self.assertEqual(json.loads(payload)["reqid"], "00000000deadbeef")

    # --- /run ----------------------------------------------------------------------------

    def test_run_sync(self):
        status, body, _ = self.agent.run("noop", reqid="abc")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"script": "noop", "exit": 0, "stdout": "ok\n", "stderr": "",
                                "reqid": "abc"})
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=0 PEER=127.0.0.1 REQID=abc "
                            "SCRIPT=noop")

    def test_run_perl_request_form(self):
        body = json.dumps({"script": "noop", "args": [], "reqid": "r2", "username": "u",
                           "token": "t"}).encode()
        head, payload = agentlib.split_response(
            self.agent.raw(agentlib.perl_request("POST", "/run", body)))
        self.assertTrue(head.startswith("HTTP/1.0 200 OK\r\n"))
        self.assertEqual(json.loads(payload)["stdout"], "ok\n")

    def test_args_with_shell_metacharacters_reach_the_script_verbatim(self):
        args = ["; rm -rf /tmp/x", "$(id)", "`id`", "a b  c", "'q'\"dq\"", "*", "", "x\ny",
                "|&>< \\", "caf\u00e9 \u2713", "--help", "-n"]
        status, body, _ = self.agent.run("echo-args", args)
        self.assertEqual(status, 200)
        want = "argc: %d\n" % len(args) + "".join("[%s]\n" % a for a in args)
        self.assertEqual(body["stdout"], want)
        self.assertEqual(body["exit"], 0)

    def test_an_arg_holding_a_nul_byte_is_refused(self):
        # execve would cut it at the NUL: the script would not get what the hook approved.
        status, body, _ = self.agent.run("echo-args", ["safe", "a\u0000b"], reqid="nul1")
        self.assertEqual((status, body), (200, {"exit": -1, "reqid": "nul1",
                                                "error": "args must not contain NUL bytes"}))
        self.assertNotIn("SCRIPT=echo-args", self.agent.log())

    def test_stdin_context(self):
        status, body, _ = self.agent.run("stdin-dump", ["a", "b c"], reqid="ctx1")
        self.assertEqual(status, 200)
        raw = body["stdout"]
        self.assertFalse(raw.endswith("\n"), "compact JSON, no trailing newline")
        ctx = json.loads(raw)
        self.assertEqual(set(ctx), {"script", "args", "reqid", "peer_ip", "username", "token",
                                    "dispatcher", "timestamp"})
        self.assertEqual(ctx["script"], "stdin-dump")
        self.assertEqual(ctx["args"], ["a", "b c"])
        self.assertEqual(ctx["reqid"], "ctx1")
        self.assertEqual(ctx["peer_ip"], "127.0.0.1")
        self.assertEqual(ctx["username"], "alice")
        self.assertEqual(ctx["token"], "tok")
        self.assertEqual(ctx["dispatcher"], "disp-1")
        self.assertRegex(ctx["timestamp"], ISO)
        self.assertNotIn("tok", self.agent.log(), "tokens are never logged")

    def test_clean_environment(self):
        env = dict(l.split("=", 1) for l in self.agent.run("env-dump")[1]["stdout"].splitlines()
                   if "=" in l)
        self.assertEqual(env["PATH"], "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        self.assertEqual(env["HOME"], "/home/test")
        self.assertEqual(env["LANG"], "C.UTF-8")
        for gone in ("FOO_SECRET", "LD_PRELOAD", "CTRL_EXEC_ROOT", "CTRL_EXEC_LOG"):
            self.assertNotIn(gone, env)
        allowed = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TERM", "USER", "LOGNAME", "PWD",
                   "SHLVL", "_"}  # the last three are set by /bin/sh itself
        self.assertLessEqual(set(env), allowed)

    def test_exit_code_and_stderr(self):
        body = self.agent.run("fail")[1]
        self.assertEqual((body["exit"], body["stdout"], body["stderr"]), (3, "", "failing\n"))

    def test_10_mib_on_stderr_does_not_deadlock(self):
        status, body, _ = self.agent.run("big-stderr", timeout=60)
        self.assertEqual(status, 200)
        self.assertEqual(body["exit"], 0)
        self.assertEqual(body["stdout"], "done\n")
        self.assertEqual(len(body["stderr"]), 10 * 1024 * 1024)
        self.assertEqual(body["stderr"].strip("e"), "")

    def test_script_killed_by_a_signal_exits_126(self):
        body = self.agent.run("self-kill")[1]
        self.assertEqual((body["exit"], body["stdout"]), (126, "before\n"))

    def test_utf8_output_passes_and_invalid_bytes_are_replaced(self):
        body = self.agent.run("utf8")[1]
        self.assertEqual(body["stdout"], "caf\u00e9 \u2713 bad:\ufffd\ufffd end")

    def test_exec_failure_exits_127(self):
        self.agent.add_script_file("broken", "#!/nonexistent/interpreter\n")
        self.agent.write_allowlist(list(self.agent.scripts) + ["broken"])
        self.agent.proc.signal(1)
        self.agent.wait_log("ACTION=reload")
        body = self.agent.run("broken")[1]
        self.assertEqual(body["exit"], 127)
        self.assertEqual(body["stdout"], "")

    def test_invalid_json(self):
        for bad in ("{not json", "[1,2]", '"noop"', ""):
            status, body, _ = self.agent.post("/run", bad)
            self.assertEqual((status, body), (200, {"exit": -1, "error": "invalid JSON"}), bad)

    def test_args_must_be_an_array(self):
        status, body, _ = self.agent.post("/run", {"script": "noop", "args": "x", "reqid": "r1"})
        self.assertEqual((status, body),
                         (200, {"exit": -1, "error": "args must be an array", "reqid": "r1"}))

    def test_unknown_script_and_invalid_names_are_not_permitted(self):
        for name in ("nope", "../noop", "noop\n", "no op", "noop;id", "", "n\u00f6op"):
            status, body, _ = self.agent.run(name, reqid="rq")
            self.assertEqual(status, 200, name)
            self.assertEqual(body, {"script": name, "exit": -1, "error": "script not permitted",
                                    "reqid": "rq"}, name)
        self.agent.wait_log("ACTION=deny PEER=127.0.0.1 REQID=rq SCRIPT=nope")
        for line in self.agent.log().splitlines():
            self.assertTrue(line.startswith("ctrl-exec-agent: "), "no forged log line: %r" % line)

    # --- /capabilities, /result, 404 -------------------------------------------------------

    def test_capabilities(self):
        status, body, _ = self.agent.get("/capabilities")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["version"], "0.12.3")
        self.assertEqual(body["tags"], {})
        names = [s["name"] for s in body["scripts"]]
        self.assertEqual(names, sorted(self.agent.scripts))
        noop = body["scripts"][names.index("noop")]
        self.assertEqual(noop, {"name": "noop", "path": self.agent.script_path("noop"),
                                "executable": True, "profile": "default"})
        self.agent.wait_log("ACTION=capabilities DISPATCHER=disp-1 PEER=127.0.0.1 SCRIPTS=%d"
                            % len(names))

    def test_result_of_an_unknown_reqid(self):
        status, body, _ = self.agent.get("/result/abc123")
        self.assertEqual((status, body), (404, {"status": "unknown", "reqid": "abc123"}))
        self.agent.wait_log("ACTION=result-miss DISPATCHER=disp-1 PEER=127.0.0.1 REQID=abc123")

    def test_not_found(self):
        for method, path in (("GET", "/nope"), ("POST", "/capabilities"), ("GET", "/run"),
                             ("GET", "/result/"), ("GET", "/result/a.b"), ("GET", "/ping?x=1"),
                             ("post", "/ping")):
            status, body, _ = self.agent.curl(method, path)
            self.assertEqual((status, body), (404, {"error": "not found"}), (method, path))

    # --- request boundaries ----------------------------------------------------------------

    def test_too_many_headers_is_431(self):
        def req(n):
            hs = "".join("X-H%d: v\r\n" % i for i in range(n))
            return ("POST /ping HTTP/1.0\r\n%sContent-Length: 2\r\n\r\n{}" % hs).encode()
        head, body = agentlib.split_response(self.agent.raw(req(31)))  # 32 lines in all
        self.assertTrue(head.startswith("HTTP/1.0 200 OK"), head)
        head, body = agentlib.split_response(self.agent.raw(req(32)))  # 33 lines
        self.assertTrue(head.startswith("HTTP/1.0 431 Request Header Fields Too Large"), head)
        self.assertEqual(json.loads(body), {"error": "too many headers"})

    def test_body_over_1_mib_is_413_without_reading_it(self):
        raw = self.agent.raw(b"POST /run HTTP/1.0\r\nContent-Length: 1048577\r\n\r\n")
        head, body = agentlib.split_response(raw)
        self.assertTrue(head.startswith("HTTP/1.0 413 Content Too Large"), head)
        self.assertEqual(json.loads(body), {"error": "request too large"})

    def test_a_client_still_sending_its_oversized_body_reads_the_413(self):
        # The agent answers without reading the body, then keeps discarding what arrives until
        # the client is done: closing on unread input would reset the connection and could
        # destroy the answer before the client reads it.
        body = b"{" + b" " * (1048576 + 200000) + b"}"
        for i in range(20):
            raw = self.agent.raw(b"POST /run HTTP/1.0\r\nContent-Length: %d\r\n\r\n"
                                 % len(body) + body)
            head, payload = agentlib.split_response(raw)
            self.assertTrue(head.startswith("HTTP/1.0 413 Content Too Large"), (i, head))
            self.assertEqual(json.loads(payload), {"error": "request too large"})

    def test_empty_request_is_400(self):
        s = self.agent.tls_socket()
        try:
            # Half-close the TCP connection under the TLS session: the request is empty.
            socket.socket(fileno=os.dup(s.fileno())).shutdown(socket.SHUT_WR)
            raw = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                raw += chunk
        finally:
            s.close()
        head, body = agentlib.split_response(raw)
        self.assertTrue(head.startswith("HTTP/1.0 400 Bad Request"), head)
        self.assertEqual(json.loads(body), {"error": "empty request"})


class Executor(agentlib.AgentTestCase):
    """With executor_socket set, sync runs go to the executor in the frame format of the
    original's C executor (agent-and-wire §4.8), here played by a Python server."""

    def setUp(self):
        super().setUp()
        self.sock_path = self.root.path("/run/ctrl-exec-agent/exec.sock")
        os.makedirs(os.path.dirname(self.sock_path), exist_ok=True)
        self.agent.write_conf("executor_socket = %s\n" % self.sock_path)

    def serve_executor(self, reply_exit, reply_out, reply_err):
        import struct
        import threading
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.sock_path)
        srv.listen(4)
        self.addCleanup(srv.close)
        got = {}

        def read_exact(conn, n):
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        def serve():
            conn, _ = srv.accept()
            with conn:
                total = struct.unpack(">I", read_exact(conn, 4))[0]
                frame = read_exact(conn, total)
                pos = 0

                def field():
                    nonlocal pos
                    n = struct.unpack(">I", frame[pos:pos + 4])[0]
                    pos += 4
                    value = frame[pos:pos + n]
                    pos += n
                    return value
                got["reqid"], got["dispatcher"], got["script"], got["stdin"] = (
                    field(), field(), field(), field())
                argc = struct.unpack(">I", frame[pos:pos + 4])[0]
                pos += 4
                got["args"] = [field() for _ in range(argc)]
                got["rest"] = frame[pos:]

                def out_field(b):
                    return struct.pack(">I", len(b)) + b
                conn.sendall(struct.pack(">i", reply_exit) + out_field(reply_out) +
                             out_field(reply_err))
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        return got, t

    def test_a_sync_run_through_the_executor_frames(self):
        got, t = self.serve_executor(7, "caf\u00e9 out".encode(), b"err\n")
        self.agent.start()
        status, body, _ = self.agent.run("echo-args", ["a b", "", "$(id)"], reqid="ex1")
        t.join(10)
        self.assertEqual((status, body), (200, {"script": "echo-args", "exit": 7,
                                                "stdout": "caf\u00e9 out", "stderr": "err\n",
                                                "reqid": "ex1"}))
        self.assertEqual((got["reqid"], got["dispatcher"], got["script"]),
                         (b"ex1", b"disp-1", b"echo-args"))
        self.assertEqual(got["args"], [b"a b", b"", b"$(id)"])
        self.assertEqual(got["rest"], b"")
        ctx = json.loads(got["stdin"])
        self.assertEqual((ctx["script"], ctx["args"], ctx["reqid"], ctx["dispatcher"]),
                         ("echo-args", ["a b", "", "$(id)"], "ex1", "disp-1"))
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=7 PEER=127.0.0.1 REQID=ex1 "
                            "SCRIPT=echo-args")

    def test_an_unreachable_executor(self):
        self.agent.start()
        status, body, _ = self.agent.run("noop", reqid="ex2")
        self.assertEqual(status, 200)
        self.assertEqual((body["exit"], body["stdout"], body["reqid"]), (-1, "", "ex2"))
        self.assertTrue(body["stderr"].startswith("executor unreachable: "), body)
        self.agent.wait_log("ACTION=run DISPATCHER=disp-1 EXIT=-1 PEER=127.0.0.1 REQID=ex2")


class CapabilitiesExtras(agentlib.AgentTestCase):
    conf_extra = "[tags]\nenv = prod\nrole = db-primary\n"

    def test_tags_and_schema_sidecars(self):
        schema = {"type": "object", "version": "2.1", "args": [{"name": "n"}]}
        with open(self.agent.script_path("noop") + ".schema.json", "w") as f:
            json.dump(schema, f)
        with open(self.agent.script_path("fail") + ".schema.json", "w") as f:
            f.write('{"b":1,"a":"x"}')
        with open(self.agent.script_path("sleeper") + ".schema.json", "w") as f:
            f.write("[not an object]")
        self.agent.start()
        body = self.agent.get("/capabilities")[1]
        self.assertEqual(body["tags"], {"env": "prod", "role": "db-primary"})
        by = {s["name"]: s for s in body["scripts"]}
        self.assertEqual(by["noop"]["schema"], schema)
        self.assertEqual(by["noop"]["schema_version"], "2.1")
        self.assertRegex(by["fail"]["schema_version"], r"^sha256:[0-9a-f]{12}$")
        self.assertNotIn("schema", by["sleeper"])
        self.assertIn("ACTION=schema-skip", self.agent.log())


if __name__ == "__main__":
    agentlib.harness.main()
