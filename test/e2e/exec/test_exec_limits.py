"""The executor's limits from agent.conf: script_timeout (the process group is killed),
script_output_limit (each stream cut, with the marker), and max_children.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import execlib  # noqa: E402
from execlib import TRUNCATED  # noqa: E402

SPEW = ("#!/bin/sh\nhead -c \"$1\" /dev/zero | tr '\\0' a\n"
        "head -c \"$2\" /dev/zero | tr '\\0' b >&2\n")


class Timeout(execlib.ExecTestCase):
    CONF_EXTRA = "script_timeout = 1\n"
    SCRIPTS = {
        # Prints its pid, its process group and a background child's pid, then waits.
        "sleeper": ("#!/bin/sh\nsleep 30 &\n"
                    "echo \"$$ $(cut -d' ' -f5 /proc/$$/stat) $!\"\necho partial >&2\nwait\n"),
        "quick": "#!/bin/sh\necho quick\n",
    }

    def test_timeout_kills_the_process_group(self):
        start = execlib.now()
        r = self.ex.call("sleeper")
        elapsed = execlib.now() - start
        self.assertLess(elapsed, 8, r)
        self.assertEqual(r.exit, 126, r)
        self.assertEqual(r.err, b"partial\nexecutor: script timed out after 1s\n")
        pid, pgid, child = [int(x) for x in r.out.split()]
        self.assertEqual(pid, pgid, "the script leads its own process group")
        execlib.harness.wait_until(lambda: not execlib.live_group_members(pgid), 5,
                                   what="process group %d gone" % pgid)
        self.assertFalse(execlib.alive(child), "the script's background sleep %d" % child)

    def test_a_quick_script_is_not_affected(self):
        self.assertReply(self.ex.call("quick"), 0, b"quick\n", b"")


class OutputLimit(execlib.ExecTestCase):
    CONF_EXTRA = "script_output_limit = 1000\n"
    SCRIPTS = {"spew": SPEW}

    def test_rows(self):
        rows = [
            # stdout bytes, stderr bytes, stdout back, stderr back
            (0, 0, b"", b""),
            (1000, 999, b"a" * 1000, b"b" * 999),
            (1001, 1000, b"a" * 1000 + TRUNCATED, b"b" * 1000),
            (5, 200000, b"a" * 5, b"b" * 1000 + TRUNCATED),
            (300000, 300000, b"a" * 1000 + TRUNCATED, b"b" * 1000 + TRUNCATED),
        ]
        for n_out, n_err, out, err in rows:
            with self.subTest(out=n_out, err=n_err):
                r = self.ex.call("spew", [str(n_out), str(n_err)])
                self.assertEqual((r.out, r.err), (out, err))
                if TRUNCATED not in out + err:
                    self.assertEqual(r.exit, 0)


class DefaultOutputLimit(execlib.ExecTestCase):
    """script_output_limit = 0 is the original's 16 MiB per stream."""

    CONF_EXTRA = "script_output_limit = 0\n"
    SCRIPTS = {"spew": SPEW}

    def test_rows(self):
        mib16 = 16 << 20
        rows = [
            (mib16, 0, b"a" * mib16, b""),
            (mib16 + 1, 0, b"a" * mib16 + TRUNCATED, b""),
        ]
        for n_out, n_err, out, err in rows:
            with self.subTest(out=n_out):
                r = self.ex.call("spew", [str(n_out), str(n_err)], timeout=60)
                self.assertEqual((len(r.out), r.out == out, r.err), (len(out), True, err))


class StdinIsWhole(execlib.ExecTestCase):
    """stdin_timeout bounds the legacy runner's write of the context; the executor writes
    stdin_bytes whole, with no timeout (agent-and-wire §3.5): a script that reads its stdin
    late still gets all of it."""

    CONF_EXTRA = "stdin_timeout = 1\n"
    SCRIPTS = {"late-reader": "#!/bin/sh\nsleep 2\nwc -c\n"}

    def test_a_late_reader_gets_every_byte(self):
        data = b"x" * (1 << 20)  # far more than a pipe holds
        self.assertReply(self.ex.call("late-reader", stdin=data), 0, b"%d\n" % len(data), b"")


class MaxChildren(execlib.ExecTestCase):
    """With max_children = 1 a second run waits until the first has ended."""

    CONF_EXTRA = "max_children = 1\n"
    PROFILES = {"default": ""}  # root, so the gate script can write its markers
    SCRIPTS = {
        "gate": ("#!/bin/sh\n: > \"$1.started\"\ni=0\n"
                 "while [ ! -e \"$1.go\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
                 "echo released\n"),
        "noop": "#!/bin/sh\necho ok\n",
    }

    def test_second_run_waits(self):
        gate = self.root.path("/gate")
        results = {}

        def run(key, script, args):
            results[key] = self.ex.call(script, args, timeout=60)
        first = threading.Thread(target=run, args=("first", "gate", [gate]))
        first.start()
        execlib.harness.wait_until(lambda: os.path.exists(gate + ".started"), 15,
                                   what="the first run started")
        second = threading.Thread(target=run, args=("second", "noop", []))
        second.start()
        # The second run must not be answered while the first holds the only slot. There is
        # no event to wait for when nothing should happen, so give it a bounded second.
        second.join(1.0)
        self.assertNotIn("second", results)
        with open(gate + ".go", "w"):
            pass
        first.join(30)
        second.join(30)
        self.assertReply(results["first"], 0, b"released\n", b"")
        self.assertReply(results["second"], 0, b"ok\n", b"")


if __name__ == "__main__":
    execlib.harness.main()
