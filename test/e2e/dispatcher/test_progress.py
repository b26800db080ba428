"""The progress line of a multi-host `ced run`/`ping` (issue 15): drawn on stderr only when it is
a terminal (a pty here), erased before the results, and never otherwise, so that output a
script reads is byte for byte what it was."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402

LINE = re.compile(r"\r\x1b\[Kced: (\d+)/(\d+) done  ok (\d+)  failed (\d+)  timeout (\d+)  "
                  r"[0-9.]+s")


def run_with_pty_stderr(root, args):
    """Runs an applet with stdout on a pipe and stderr on a pty; returns (rc, out, err)."""
    return harness.run_with_pty(root, args, on_pty="stderr")


class Progress(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scope = harness.TestCase("run")
        cls.scope.setUp()
        cls.fleet = displib.Fleet(cls.scope, n=3)

    @classmethod
    def tearDownClass(cls):
        cls.scope.doCleanups()

    def test_drawn_on_a_terminal_and_erased_before_the_results(self):
        f = self.fleet
        for args, total in ((["ced", "run", *f.names(), "fail"], 3),
                            (["ced", "ping", *f.names()], 3)):
            with self.subTest(args=args[:2]):
                rc, out, err = run_with_pty_stderr(f.disp, args)
                lines = LINE.findall(err)
                self.assertTrue(lines, err)
                done, all_, ok, failed, timeout = map(int, lines[-1])
                self.assertEqual((done, all_), (total, total), err)
                if args[1] == "run":
                    self.assertEqual((ok, failed, timeout), (0, 3, 0), err)
                else:
                    self.assertEqual((ok, failed, timeout), (3, 0, 0), err)
                # The last thing written about it erases it.
                self.assertTrue(err.rstrip("\n").endswith("\r\x1b[K") or
                                err.rfind("\r\x1b[K") > err.rfind(" done "), repr(err[-200:]))
                # Standard output is what it is without a terminal (hosts come in completion
                # order, and times and reqids differ).
                plain = f.ced(*args[1:])

                def norm(text):
                    text = re.sub(r"\d+ms|req:[0-9a-f]+", "", text)
                    return sorted(re.sub(r" +", " ", line) for line in text.splitlines())
                self.assertEqual(norm(out), norm(plain.out))

    def test_never_without_a_terminal_nor_with_json_nor_for_one_host(self):
        f = self.fleet
        r = f.ced("run", *f.names(), "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("\x1b[K", r.err)
        self.assertNotIn(" done ", displib.without_logs(r.err))
        for args in (["ced", "--json", "run", *f.names(), "noop"],
                     ["ced", "run", f.names()[0], "noop"]):
            with self.subTest(args=args[:3]):
                rc, out, err = run_with_pty_stderr(f.disp, args)
                self.assertEqual(rc, 0, err)
                self.assertFalse(LINE.search(err), repr(err))


if __name__ == "__main__":
    harness.main()
