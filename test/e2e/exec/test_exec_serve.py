"""`ctrl-exec-exec serve`: starting (root only, the peer user, the socket path, a bad config)
and re-reading agent.conf and scripts.conf while it runs.
"""
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(__file__))
import execlib  # noqa: E402


class Startup(execlib.ExecTestCase):
    SCRIPTS = {"noop": "#!/bin/sh\necho ok\n"}
    START = False

    def serve_exits(self, args, preexec_fn=None):
        """Runs serve expecting it to exit on its own; returns the harness Result."""
        return self.root.run(args, timeout=15, preexec_fn=preexec_fn)

    def test_refused_starts(self):
        def as_nobody():
            os.setgroups([])
            os.setgid(execlib.NOBODY)
            os.setuid(execlib.NOBODY)

        bad_conf = self.root.write("/etc/bad/agent.conf",
                                   self.ex.conf_text() + "not a key line\n")
        ex = self.ex
        rows = [
            # label, args, preexec, exit, words stderr must hold
            ("not root", ex.serve_args(), as_nobody, 1,
             ["ctrl-exec-exec: serve must run as root"]),
            ("unknown peer user", ex.serve_args("cx-no-such-user"), None, 78,
             ["cx-no-such-user"]),
            ("bad agent.conf", ["ctrl-exec-exec", "serve", ex.sock, bad_conf, ex.scripts_conf,
                                "nobody"], None, 78, ["Malformed config line"]),
        ]
        for label, args, preexec, exit_code, words in rows:
            with self.subTest(label):
                r = self.serve_exits(args, preexec)
                self.assertEqual(r.rc, exit_code, r)
                for w in words:
                    self.assertIn(w, r.err)

    def test_socket_path(self):
        ex = self.ex
        # A regular file where the socket goes is not replaced.
        with open(ex.sock, "w") as f:
            f.write("precious\n")
        r = self.serve_exits(ex.serve_args())
        self.assertNotEqual(r.rc, 0, r)
        with open(ex.sock) as f:
            self.assertEqual(f.read(), "precious\n")
        os.unlink(ex.sock)
        # A missing directory is an error too.
        r = self.serve_exits(ex.serve_args(sock=self.root.path("/no/such/dir/exec.sock")))
        self.assertNotEqual(r.rc, 0, r)
        # A stale socket (left by a crash) is replaced.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(ex.sock)
        stale.close()
        ex.start()
        self.assertReply(ex.call("noop"), 0, b"ok\n", b"")

    def test_usage_and_version(self):
        r = self.root.run(["ctrl-exec-exec", "serve", self.ex.sock])
        self.assertNotEqual(r.rc, 0, r)
        r = self.root.run(["ctrl-exec-exec", "--version"])
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.out.startswith("ctrl-exec-exec "), r)


class Reload(execlib.ExecTestCase):
    SCRIPTS = {"ids": "#!/bin/sh\nid -u\n"}
    PROFILES = {"default": "run_as = nobody", "other": "run_as = 4242"}

    def call_until(self, script, want, timeout=10):
        """Calls until the reply is `want` (a change may take a moment to be noticed)."""
        last = []

        def check():
            last[:] = [self.ex.call(script)]
            return last[0].tuple() == want
        try:
            execlib.harness.wait_until(check, timeout, interval=0.1, what="reply %r" % (want,))
        except AssertionError:
            self.fail("last reply %r, wanted %r" % (last, want))

    def test_a_new_script_is_seen_without_a_restart(self):
        self.assertReply(self.ex.call("later"), -1, b"", b"executor: script not permitted\n")
        self.ex.add_script("later", "#!/bin/sh\necho later\n")
        self.call_until("later", (0, b"later\n", b""))

    def test_a_changed_profile_applies_to_the_next_run(self):
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        self.ex.profiles["default"] = "run_as = 4242"
        self.ex.write_conf()
        self.call_until("ids", (0, b"4242\n", b""))

    def test_a_removed_script_is_refused(self):
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        del self.ex.scripts["ids"]
        self.ex.write_allowlist("# nothing\n")
        self.call_until("ids", (-1, b"", b"executor: script not permitted\n"))

    def test_a_broken_agent_conf_keeps_the_old_config(self):
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        self.ex.write_conf(self.ex.conf_text() + "this is not a key line\n")
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        self.ex.wait_log("ACTION=exec-reload-failed")
        self.assertTrue(self.ex.proc.alive())
        # Fixed again: the fixed file is read.
        self.ex.profiles["default"] = "run_as = 4242"
        self.ex.write_conf()
        self.call_until("ids", (0, b"4242\n", b""))

    def test_a_file_renamed_over_the_old_one_is_seen(self):
        # As editors save: a new inode, here with the old size and mtime.
        path = self.ex.script_path("ids")
        with open(self.ex.scripts_conf, "w") as f:
            f.write("ids = %s profile=default\n" % path)
        self.call_until("ids", (0, b"65534\n", b""))
        st = os.stat(self.ex.scripts_conf)
        tmp = self.ex.scripts_conf + ".new"
        with open(tmp, "w") as f:
            f.write("ids = %s profile=other  \n" % path)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(tmp, self.ex.scripts_conf)
        self.assertEqual(os.stat(self.ex.scripts_conf).st_size, st.st_size)
        self.assertReply(self.ex.call("ids"), 0, b"4242\n", b"")

    def test_a_missing_allowlist_keeps_the_old_one(self):
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        os.rename(self.ex.scripts_conf, self.ex.scripts_conf + ".away")
        self.assertReply(self.ex.call("ids"), 0, b"65534\n", b"")
        self.ex.wait_log("ACTION=exec-reload-failed")

    def test_sighup_rereads(self):
        path = self.ex.script_path("ids")
        with open(self.ex.scripts_conf, "w") as f:
            f.write("ids = %s profile=default\n" % path)
        self.call_until("ids", (0, b"65534\n", b""))
        # The same size (trailing spaces are trimmed), inode and mtime: only SIGHUP tells.
        st = os.stat(self.ex.scripts_conf)
        with open(self.ex.scripts_conf, "r+") as f:
            f.write("ids = %s profile=other  \n" % path)
        os.utime(self.ex.scripts_conf, ns=(st.st_atime_ns, st.st_mtime_ns))
        after = os.stat(self.ex.scripts_conf)
        self.assertEqual((after.st_size, after.st_ino, after.st_mtime_ns),
                         (st.st_size, st.st_ino, st.st_mtime_ns))
        self.ex.proc.signal(signal.SIGHUP)
        self.call_until("ids", (0, b"4242\n", b""))
        self.assertTrue(self.ex.proc.alive())


if __name__ == "__main__":
    execlib.harness.main()
