"""Live output (issue 15): `ced run --follow` and `--json --follow` against real agents, an
agent that answers as the original does (ignoring "stream"), the output cap, and batches.

"Before the script ends" is shown by construction, not by a clock: the `gated` script prints a
line and then waits for a file that the test creates only once it has read that line from
ced's stdout; without live output the line would never come first, and the script would give
up. The one-second case is judged by the events' own timestamps."""
import json
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402

SCRIPTS = {
    # Prints, then waits (at most 30 s) for the file named by $1 before printing again.
    "gated": "#!/bin/sh\necho one\ni=0\n"
             "while [ ! -e \"$1\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n"
             "[ -e \"$1\" ] || { echo 'no go' >&2; exit 9; }\necho two\n",
    "two-lines": "#!/bin/sh\necho one\nsleep 1\necho two\n",
    # 1 MiB of 32-byte lines on stdout, and a line on stderr.
    "flood": "#!/bin/sh\nyes 0123456789abcdef0123456789abcde | head -c 1048576\n"
             "echo done >&2\n",
    "partial": "#!/bin/sh\nprintf 'no newline'\n",
}
CAP = 65536
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_events(proc, on_event=None, timeout=60):
    """Reads ced's NDJSON stdout line by line as it comes; returns the parsed lines."""
    events = []
    buf = b""
    fd = proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("no output within %ss; so far %r" % (timeout, events))
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            ev = json.loads(line)
            events.append(ev)
            if on_event:
                on_event(ev)
    if buf.strip():
        events.append(json.loads(buf))
    return events


class Follow(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scope = harness.TestCase("run")
        cls.scope.setUp()
        cls.fleet = displib.Fleet(cls.scope, n=2, scripts=SCRIPTS,
                                  agent_extra="script_output_limit = %d\n" % CAP)
        cls.a1, cls.a2 = cls.fleet.names()

    @classmethod
    def tearDownClass(cls):
        cls.scope.doCleanups()

    def popen(self, *args, env=None):
        root = self.fleet.disp
        e = dict(root.env)
        e.update(env or {})
        p = subprocess.Popen([os.path.join(root.bin, "ced")] + list(args), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=e, cwd=root.dir)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p

    def finish(self, p):
        err = p.stderr.read().decode()
        rc = p.wait(30)
        p.stdout.close()
        p.stderr.close()
        return rc, err

    def test_the_first_line_comes_before_the_script_ends(self):
        gate = os.path.join(self.fleet.disp.dir, "gate-%d" % os.getpid())
        self.addCleanup(lambda: os.path.exists(gate) and os.unlink(gate))

        def on_event(ev):
            if ev.get("event") == "output" and ev["data"] == "one\n":
                open(gate, "w").close()

        p = self.popen("--json", "--follow", "run", self.a1, "gated", "--", gate)
        events = read_events(p, on_event)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        outs = [e for e in events if e.get("event") == "output"]
        self.assertEqual([e["data"] for e in outs], ["one\n", "two\n"], events)
        for e in outs:
            self.assertEqual((e["host"], e["stream"]), (self.a1, "stdout"))
            self.assertIn("ms", e)  # sent live by the agent
        kinds = [e.get("event") for e in events]
        self.assertEqual(kinds, ["output", "output", "result", None])
        self.assertEqual(events[2]["result"]["exit"], 0)
        self.assertLessEqual(outs[0]["t"], outs[1]["t"])
        self.assertLessEqual(outs[1]["t"], events[2]["t"])
        final = events[-1]
        self.assertEqual(final["ok"], 1)
        self.assertEqual(final["results"][0]["stdout"], "one\ntwo\n")

    def test_a_second_apart_by_the_events_timestamps(self):
        p = self.popen("--json", "--follow", "run", self.a1, "two-lines")
        events = read_events(p)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        one, two = [e for e in events if e.get("event") == "output"]
        self.assertEqual((one["data"], two["data"]), ("one\n", "two\n"))
        # The agent's clock: `sleep 1` lies between the two lines.
        self.assertGreaterEqual(two["ms"] - one["ms"], 1000)
        # The dispatcher's: the first line was printed before the second arrived.
        self.assertLess(one["t"], two["t"])
        self.assertLess(one["t"], events[-2]["t"])  # and before the result

    def test_human_follow_prefixes_lines_and_ends_with_the_summary(self):
        r = self.fleet.ced("run", self.a1, self.a2, "fail", "--follow")
        self.assertEqual(r.rc, 1, r)
        lines = r.out.splitlines()
        w = max(len(self.a1), len(self.a2))
        for h in (self.a1, self.a2):
            self.assertIn(h.ljust(w) + " | about to fail", lines)
            self.assertIn(h.ljust(w) + " ! failure detail", lines)
        summary = [l for l in lines if l.startswith("==> ")]
        self.assertEqual(len(summary), 2, r.out)
        for l in summary:
            self.assertRegex(l, r"^==> a\d\.fleet\.test  \[FAIL  exit:3  \d+ms  req:[0-9a-f]+\]$")
        # The output is not printed a second time, and no colour reaches a pipe.
        self.assertEqual(r.out.count("about to fail"), 2)
        self.assertNotIn("\x1b", r.out)
        self.assertEqual(r.out.splitlines()[-1][:4], "==> ")

    def test_a_partial_line_is_printed_when_the_host_ends(self):
        r = self.fleet.ced("run", self.a1, "partial", "--follow")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out.splitlines()[0], self.a1 + " | no newline")

    def test_colour_on_a_terminal_unless_no_color(self):
        for env, coloured in (({}, True), ({"NO_COLOR": "1"}, False)):
            out = run_with_pty_stdout(self.fleet.disp, ["ced", "run", self.a1, "noop", "--follow"],
                                      env)
            self.assertEqual("\x1b[" in out, coloured, (env, out))
            self.assertIn(self.a1 + " | ok", ANSI.sub("", out).replace("\r", ""))

    def test_the_cap_holds_in_the_stream_and_ends_truncated(self):
        p = self.popen("--json", "--follow", "run", self.a1, "flood")
        events = read_events(p)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        out = "".join(e["data"] for e in events
                      if e.get("event") == "output" and e["stream"] == "stdout")
        self.assertEqual(len(out), CAP)
        self.assertEqual(out, ("0123456789abcdef0123456789abcde\n" * (CAP // 32 + 1))[:CAP])
        chunks = [e for e in events if e.get("event") == "output" and e["stream"] == "stdout"]
        self.assertGreater(len(chunks), 1)
        self.assertTrue(all(len(e["data"]) <= 16384 for e in chunks))
        result = events[-2]
        self.assertEqual(result["event"], "result")
        self.assertIs(result["result"]["truncated"], True)
        self.assertEqual(len(result["result"]["stdout"]), CAP)
        self.assertIs(events[-1]["results"][0]["truncated"], True)

    def test_batches_follow_each_other(self):
        p = self.popen("--json", "--follow", "run", self.a1, self.a2, "noop", "--batch", "1")
        events = read_events(p)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        seen = [(e.get("event"), e.get("host") or (e.get("batch") or {}).get("batch"))
                for e in events]
        self.assertEqual(seen, [("output", self.a1), ("result", self.a1), ("batch", 1),
                                ("output", self.a2), ("result", self.a2), ("batch", 2),
                                (None, None)])
        self.assertEqual(len(events[-1]["batches"]), 2)

    def test_human_batches_print_headers_and_summaries(self):
        r = self.fleet.ced("run", self.a1, self.a2, "noop", "--batch", "1", "--follow")
        self.assertEqual(r.rc, 0, r)
        lines = r.out.splitlines()
        self.assertEqual(lines[0], self.a1 + " | ok")
        self.assertEqual(lines[1], "=== batch 1 of 2 (1 host) ===")
        self.assertTrue(lines[2].startswith("==> " + self.a1 + "  [OK  exit:0"), r.out)
        self.assertEqual(lines[3], self.a2 + " | ok")

    def test_follow_with_async_is_a_usage_error(self):
        r = self.fleet.ced("run", self.a1, "noop", "--follow", "--async")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--follow", r.err)

    def test_an_agent_that_ignores_stream_still_gives_its_result(self):
        """A stand-in with the original agent's answer: one JSON object, Content-Type
        application/json, whatever the request said."""
        agent = self.fleet.agents[1]
        agent.stop()
        self.addCleanup(agent.start)
        seen = []
        server = OriginalStyleAgent(agent, seen)
        self.addCleanup(server.close)
        p = self.popen("--json", "--follow", "run", self.a2, "noop")
        events = read_events(p)
        rc, err = self.finish(p)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(seen), 1)
        self.assertIs(json.loads(seen[0])["stream"], True)  # asked, and ignored
        out = events[0]
        self.assertEqual((out["event"], out["host"], out["data"]), ("output", self.a2, "perl\n"))
        self.assertNotIn("ms", out)  # not live: read from the result
        self.assertEqual(events[1]["event"], "result")
        self.assertEqual(events[-1]["results"][0]["stdout"], "perl\n")
        # The human form shows the same line.
        server.reset()
        r = self.fleet.ced("run", self.a2, "noop", "--follow")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out.splitlines()[0], self.a2 + " | perl")


class OriginalStyleAgent:
    """A TLS server on the agent's port with the agent's cert, that answers /run as the
    original agent does: one JSON object, with Content-Length, then close."""

    def __init__(self, agent, seen):
        self.seen = seen
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(agent.root.path("/etc/ctrl-exec-agent/agent.crt"),
                            agent.root.path("/etc/ctrl-exec-agent/agent.key"))
        ctx.load_verify_locations(agent.root.path("/etc/ctrl-exec-agent/ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", agent.port))
        self.sock.listen(8)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reset(self):
        del self.seen[:]

    def serve(self):
        while not self.stop:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as c:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += c.recv(4096)
                    head, body = data.split(b"\r\n\r\n", 1)
                    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                    while len(body) < n:
                        body += c.recv(4096)
                    req = json.loads(body)
                    self.seen.append(body.decode())
                    answer = json.dumps({"script": req["script"], "exit": 0, "stdout": "perl\n",
                                         "stderr": "", "reqid": req["reqid"]}).encode()
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
            except (OSError, ssl.SSLError, ValueError, AttributeError):
                pass

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def run_with_pty_stdout(root, args, env, timeout=60):
    """Runs an applet with stdout on a pty (stderr to a pipe); returns what the pty got."""
    import pty
    master, slave = pty.openpty()
    e = dict(root.env)
    e.pop("NO_COLOR", None)
    e.update(env)
    try:
        p = subprocess.Popen([os.path.join(root.bin, args[0])] + list(args[1:]), stdout=slave,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=e, cwd=root.dir)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                p.kill()
                raise AssertionError("no end of output within %ss" % timeout)
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        p.stderr.read()
        p.stderr.close()
        p.wait(timeout)
        return out.decode(errors="replace")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


if __name__ == "__main__":
    harness.main()
