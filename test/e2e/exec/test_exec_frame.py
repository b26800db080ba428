"""The executor's unix-socket frame (agent-and-wire §4.8) from a Python client written from the
spec: byte-exact replies, stdin and args verbatim, exit codes, the script's environment,
refusals, malformed frames and the peer check.
"""
import os
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(__file__))
import execlib  # noqa: E402
from execlib import MALFORMED, field, request, request_body, response, u32  # noqa: E402

SCRIPTS = {
    "noop": "#!/bin/sh\necho ok\n",
    "cat": "#!/bin/sh\ncat\n",
    "wc": "#!/bin/sh\nwc -c\n",
    "args": "#!/bin/sh\nprintf 'argc=%s\\n' $#\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    "env": "#!/bin/sh\ntr '\\0' '\\n' < /proc/$$/environ\necho \"cwd=$(pwd)\"\necho \"argv0=$0\"\n",
    "exit0": "#!/bin/sh\nexit 0\n",
    "exit3": "#!/bin/sh\necho out\necho err >&2\nexit 3\n",
    "exit255": "#!/bin/sh\nexit 255\n",
    "kill9": "#!/bin/sh\necho before\nkill -KILL $$\n",
    "term": "#!/bin/sh\nkill -TERM $$\necho never\n",
    "bad-interp": "#!/nonexistent/interpreter\necho never\n",
    "not-an-executable": b"\x7fELF\x02\x01\x01 not really an executable\n",
    "outside": "#!/bin/sh\necho outside\n",
    "undefined": execlib.Script("#!/bin/sh\necho never\n", "no-such-profile"),
    "ids": "#!/bin/sh\nid -u\n",
}


class Frame(execlib.ExecTestCase):
    SCRIPTS = SCRIPTS
    # Every script but "outside" is in script_dirs; "outside" is moved out in setUp.
    CONF_EXTRA = "script_dirs = {root}/opt/ctrl-exec-scripts\n"

    def setUp(self):
        super().setUp()
        outside_dir = self.root.path("/opt/elsewhere")
        os.makedirs(outside_dir)
        os.chmod(outside_dir, 0o755)
        self.outside = os.path.join(outside_dir, "outside.sh")
        os.rename(self.ex.script_path("outside"), self.outside)
        text = self.ex.allowlist_text().replace(self.ex.script_path("outside"), self.outside)
        with open(self.ex.scripts_conf, "w") as f:
            f.write(text)

    def test_round_trip_bytes(self):
        # The request exactly as laid out in §4.8, byte by byte, and the exact reply bytes.
        body = (b"\x00\x00\x00\x05req-1" + b"\x00\x00\x00\x06disp-1" + b"\x00\x00\x00\x04args" +
                b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01a" +
                b"\x00\x00\x00\x03b c")
        self.assertEqual(body, request_body("args", ["a", "b c"]))
        raw = self.ex.exchange(u32(len(body)) + body)
        self.assertEqual(raw, b"\x00\x00\x00\x00" + b"\x00\x00\x00\x11argc=2\n[a]\n[b c]\n" +
                         b"\x00\x00\x00\x00")
        # A negative exit is an i32: -1 is ff ff ff ff.
        raw = self.ex.exchange(request("nope"))
        self.assertEqual(raw, b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00" +
                         field(b"executor: script not permitted\n"))

    def test_stdin_arrives_verbatim(self):
        rows = [
            ("empty", b""),
            ("nul and high bytes", b"a\x00b\x00\n\xff\xfe\x80 \r\n\x00"),
            ("json context", b'{"script":"cat","args":["x"],"reqid":"r"}'),
            ("larger than a pipe", os.urandom(1 << 20)),
        ]
        for name, data in rows:
            with self.subTest(name):
                self.assertReply(self.ex.call("cat", stdin=data), 0, data, b"")

    def test_args_arrive_verbatim(self):
        rows = [
            [],
            ["a b", "", "  lead and trail  "],
            ["'single'", '"double"', "back\\slash", "$(id)", "`id`", "*", "~", ";", "|"],
            ["-n", "--", "-e"],
            ["caf\u00e9", "\u2713 \u65e5\u672c", "tab\there", "new\nline"],
            ["x" * 100000],
        ]
        for args in rows:
            with self.subTest(args=args[:3]):
                want = "argc=%d\n" % len(args) + "".join("[%s]\n" % a for a in args)
                self.assertReply(self.ex.call("args", args), 0, want.encode(), b"")

    def test_argc_limit(self):
        self.assertReply(self.ex.call("args", ["x"] * 256), 0,
                         b"argc=256\n" + b"[x]\n" * 256, b"")
        self.assertEqual(self.ex.exchange(request("args", ["x"] * 257)), MALFORMED)

    def test_exit_codes(self):
        rows = [
            ("exit0", 0, b"", b""),
            ("exit3", 3, b"out\n", b"err\n"),
            ("exit255", 255, b"", b""),
            ("kill9", 126, b"before\n", b""),  # killed by a signal
            ("term", 126, b"", b""),
            ("bad-interp", 127,
             b"", b"executor: exec '%s' failed: No such file or directory\n"),
            ("not-an-executable", 127, b"", b"executor: exec '%s' failed: Exec format error\n"),
        ]
        for script, exit_code, out, err in rows:
            with self.subTest(script=script):
                if b"%s" in err:
                    err = err % self.ex.script_path(script).encode()
                self.assertReply(self.ex.call(script), exit_code, out, err)

    def test_environment_cwd_and_argv0(self):
        want = "PATH=%s\ncwd=/\nargv0=%s\n" % (execlib.CLEAN_PATH, self.ex.script_path("env"))
        self.assertReply(self.ex.call("env"), 0, want.encode(), b"")

    def test_refusals(self):
        rows = [
            # script, the reply's stderr, what resolve says of the same name
            ("nope", b"executor: script not permitted\n", "DENY not-allowlisted"),
            ("", b"executor: script not permitted\n", "DENY not-allowlisted"),
            ("../noop", b"executor: script not permitted\n", "DENY not-allowlisted"),
            ("outside", b"executor: script not in script_dirs\n", "DENY not-in-script-dirs"),
            ("undefined", b"executor: undefined profile\n", "DENY undefined-profile"),
        ]
        for script, err, decision in rows:
            with self.subTest(script=script):
                self.assertEqual(self.ex.exchange(request(script)), response(-1, b"", err))
                r = self.ex.resolve(script)
                self.assertEqual((r.rc, r.out), (0, decision + "\n"), r)
        # reqid and dispatcher_id are not the executor's business: any bytes are fine.
        self.assertReply(self.ex.call("noop", reqid=b"", dispatcher=b"\x00\xff"), 0, b"ok\n", b"")

    def test_malformed_frames(self):
        good = request_body("noop")
        names = field(b"req-1") + field(b"disp-1") + field(b"noop")  # the first three fields
        closed = b""
        rows = [
            # name, bytes sent (then the write side is shut), the reply
            ("nothing", b"", closed),
            ("half a length", b"\x00\x00", closed),
            ("short frame", u32(100) + good[:10], closed),
            ("total_len 0", u32(0), closed),
            ("total_len 16 MiB + 1", u32(execlib.MAX_FRAME + 1), closed),
            ("total_len 4 GiB - 1", u32(0xFFFFFFFF) + good, closed),
            ("field past the end", u32(8) + u32(1000) + b"abcd", MALFORMED),
            ("stdin past the end", u32(len(names) + 8) + names + u32(50) + b"abcd", MALFORMED),
            ("no argc", u32(len(good) - 4) + good[:-4], MALFORMED),
            ("argc 257", request("args", ["x"] * 257), MALFORMED),
            ("argc 2^32-1, no args", u32(len(good)) + good[:-4] + u32(0xFFFFFFFF), MALFORMED),
            ("argc 2, one arg", u32(len(request_body("args", ["a"], argc=2))) +
             request_body("args", ["a"], argc=2), MALFORMED),
            ("trailing garbage", u32(len(good) + 3) + good + b"xyz", MALFORMED),
        ]
        for name, data, reply in rows:
            with self.subTest(name):
                self.assertEqual(self.ex.exchange(data, half_close=True, timeout=15), reply)
        # The executor is still serving.
        self.assertReply(self.ex.call("noop"), 0, b"ok\n", b"")

    def test_largest_frame_is_accepted(self):
        head = request_body("wc", stdin=b"")
        stdin = b"s" * (execlib.MAX_FRAME - len(head))
        body = request_body("wc", stdin=stdin)
        self.assertEqual(len(body), execlib.MAX_FRAME)
        reply = execlib.parse_response(self.ex.exchange(u32(len(body)) + body, timeout=60))
        self.assertReply(reply, 0, b"%d\n" % len(stdin), b"")

    def test_one_request_per_connection(self):
        # Two frames on one connection: the first is answered, then the connection closes.
        raw = self.ex.exchange(request("noop") + request("exit3"))
        self.assertEqual(raw, response(0, b"ok\n", b""))

    def test_socket_owner_and_mode(self):
        st = os.stat(self.ex.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (execlib.NOBODY, execlib.NOBODY, 0o600))

    def connect_as(self, uid, data):
        """Forks; the child drops to `uid` (gid the same, no groups), connects, sends `data`
        and reports every byte it read until the close (or the connect error)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.close(r)
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                try:
                    out = b"reply:" + execlib.exchange(self.ex.sock, data, timeout=15)
                except OSError as e:
                    out = b"error:" + str(e.strerror).encode()
                os.write(w, out)
            finally:
                os._exit(0)
        os.close(w)
        got = b""
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            got += chunk
        os.close(r)
        os.waitpid(pid, 0)
        return got

    def test_peer_uid(self):
        self.assertEqual(self.connect_as(execlib.NOBODY, request("ids")),
                         b"reply:" + response(0, b"65534\n", b""))
        # Any other uid cannot even connect to the 0600 socket...
        self.assertEqual(self.connect_as(4242, request("noop")), b"error:Permission denied")
        # ...and when the socket's mode would let it, the executor closes without a reply.
        os.chmod(self.ex.sock, 0o666)
        self.assertEqual(self.connect_as(4242, request("noop")), b"reply:")
        self.ex.wait_log("ACTION=exec-peer-refused")
        lines = [line for line in self.ex.log().splitlines() if "exec-peer-refused" in line]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("UID=4242", lines[0])
        self.assertReply(self.ex.call("noop"), 0, b"ok\n", b"")  # root is a peer too

    def test_request_head_deadline(self):
        # A client that connects and sends nothing is closed after 10 s.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(self.ex.sock)
        start = execlib.now()
        try:
            self.assertEqual(s.recv(100), b"")
        except ConnectionResetError:
            pass
        finally:
            s.close()
        self.assertLess(execlib.now() - start, 15)
        self.assertGreater(execlib.now() - start, 8)


if __name__ == "__main__":
    execlib.harness.main()
