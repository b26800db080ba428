"""The executor applies each script's profile (agent-and-wire §2.2, §4.8): run_as, caps,
writable, no_new_privileges, and the read-only agent directories, seen from inside the script.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import execlib  # noqa: E402

# Each probe is a script body; each test allowlists it once per profile as "<probe>-<profile>".
PROBES = {
    "ids": "#!/bin/sh\nid -u\nid -g\nid -G\n",
    "status": "#!/bin/sh\ngrep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/$$/status\n",
    "chown": "#!/bin/sh\nchown 4242 \"$1\"\n",
    # For each path: "<path>: ok", or "<path>: <the error text of touch>".
    "touch": ("#!/bin/sh\nfor p in \"$@\"; do\n"
              "  if err=$(touch \"$p\" 2>&1); then echo \"$p: ok\"; else echo \"$p: ${err##*: }\"; fi\n"
              "done\n"),
    "tmp": ("#!/bin/sh\nif [ -e \"$1\" ]; then echo present; else echo absent; fi\n"
            "echo x > \"$2\" && echo wrote\n"),
    # The options of the mount at $1, as this script's mount namespace has it.
    "mountopts": "#!/bin/sh\nawk -v p=\"$1\" '$5 == p { o = $6 } END { print o }' /proc/self/mountinfo\n",
}

PROFILES = {
    "default": "run_as = nobody",
    "numeric": "run_as = 4242",
    "root": "# no run_as: the script runs as root",
    "chown": "run_as = nobody\ncaps = CAP_CHOWN",
    "two-caps": "run_as = nobody\ncaps = CAP_CHOWN, CAP_NET_BIND_SERVICE",
    "root-chown": "caps = CAP_CHOWN",
    "nnp-yes": "run_as = nobody\nno_new_privileges = yes",
    "nnp-no": "run_as = nobody\nno_new_privileges = no",
    "wr": "run_as = nobody\nwritable = {root}/w",
    # The agent's own directories stay read-only even when listed in writable.
    "root-wr": "writable = {root}/w:{root}/etc/ctrl-exec-agent:{root}/srv/runs",
    "missing-wr": "run_as = nobody\nwritable = {root}/w:{root}/no-such-dir",
    "ghost": "run_as = cx-no-such-user",
}

# (probe, profile) pairs the tests use.
USES = [
    ("ids", "default"), ("ids", "numeric"), ("ids", "root"),
    ("status", "default"), ("status", "chown"), ("status", "two-caps"), ("status", "root"),
    ("status", "root-chown"), ("status", "nnp-yes"), ("status", "nnp-no"),
    ("chown", "chown"), ("chown", "default"), ("chown", "root-chown"),
    ("touch", "default"), ("touch", "wr"), ("touch", "root"), ("touch", "root-wr"),
    ("tmp", "default"), ("tmp", "wr"),
    ("mountopts", "root"), ("mountopts", "wr"),
    ("ids", "missing-wr"), ("ids", "ghost"),
]


def mask(*bits):
    return "%016x" % sum(1 << b for b in bits)


CAP_CHOWN, CAP_NET_BIND_SERVICE = 0, 10


class Profiles(execlib.ExecTestCase):
    SCRIPTS = {"%s-%s" % (probe, prof): execlib.Script(PROBES[probe], prof)
               for probe, prof in USES}
    PROFILES = PROFILES
    # Every directory the executor must keep read-only: the fixed two, dirname(agent.conf) (the
    # same), dirname(scripts.conf), async_runs_dir and dirname(trusted_dispatchers_path).
    SCRIPTS_CONF = "/srv/allow/scripts.conf"
    CONF_EXTRA = ("async_runs_dir = {root}/srv/runs\n"
                  "trusted_dispatchers_path = {root}/srv/trust/ctrl-exec-dispatchers\n")

    def setUp(self):
        super().setUp()
        # World-writable, so that a refused write by nobody is the mount's doing (EROFS), not
        # the directory's permissions (EACCES).
        for d in ("/w", "/other", execlib.ETC, execlib.STATE, "/srv/runs", "/srv/trust",
                  "/srv/allow"):
            os.makedirs(self.root.path(d), exist_ok=True)
            os.chmod(self.root.path(d), 0o777)

    def run_probe(self, probe, profile, args=()):
        return self.ex.call("%s-%s" % (probe, profile), args)

    def test_resolve_names_each_profile(self):
        ok = "OK path=%s|profile=%s|run_as=%s|nnp=%s|caps=%s|writable=%s\n"
        w = self.root.path("/w")
        rows = [
            # probe, profile, run_as, nnp, caps, writable
            ("ids", "default", "nobody", "1", "", ""),
            ("ids", "numeric", "4242", "1", "", ""),
            ("ids", "root", "", "1", "", ""),
            ("status", "two-caps", "nobody", "1", "CAP_CHOWN,CAP_NET_BIND_SERVICE", ""),
            ("status", "nnp-no", "nobody", "0", "", ""),
            ("touch", "wr", "nobody", "1", "", w),
            ("touch", "root-wr", "", "1", "",
             "%s:%s:%s" % (w, self.root.path(execlib.ETC), self.root.path("/srv/runs"))),
        ]
        for probe, profile, run_as, nnp, caps, writable in rows:
            name = "%s-%s" % (probe, profile)
            with self.subTest(name):
                r = self.ex.resolve(name)
                self.assertEqual((r.rc, r.out), (0, ok % (self.ex.script_path(name), profile,
                                                          run_as, nnp, caps, writable)), r)

    def test_run_as(self):
        rows = [
            ("default", b"65534\n65534\n65534\n"),
            ("numeric", b"4242\n4242\n4242\n"),
        ]
        for profile, out in rows:
            with self.subTest(profile=profile):
                self.assertReply(self.run_probe("ids", profile), 0, out, b"")
        # Without run_as: root. (Its supplementary groups are the executor's; not checked.)
        r = self.run_probe("ids", "root")
        self.assertEqual((r.exit, r.out.splitlines()[:2], r.err), (0, [b"0", b"0"], b""))

    def test_capability_sets_and_no_new_privs(self):
        none, chown, two = mask(), mask(CAP_CHOWN), mask(CAP_CHOWN, CAP_NET_BIND_SERVICE)
        rows = [
            # profile,     Inh,  Prm,   Eff,   Bnd,   Amb,   NoNewPrivs
            ("default",    none, none,  none,  none,  none,  "1"),
            ("chown",      chown, chown, chown, chown, chown, "1"),
            ("two-caps",   two,  two,   two,   two,   two,   "1"),
            # Root keeps only the bounding set = caps (exec recomputes its sets from it).
            ("root",       none, none,  none,  none,  none,  "1"),
            ("root-chown", chown, chown, chown, chown, chown, "1"),
            ("nnp-yes",    none, none,  none,  none,  none,  "1"),
            ("nnp-no",     none, none,  none,  none,  none,  "0"),
        ]
        keys = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
        for row in rows:
            profile, want = row[0], dict(zip(keys, row[1:]))
            with self.subTest(profile=profile):
                r = self.run_probe("status", profile)
                self.assertEqual((r.exit, r.err), (0, b""), r)
                self.assertEqual(execlib.status_fields(r.out.decode()), want)

    def test_caps_chown(self):
        rows = [
            # profile, exit, owner after, stderr
            ("chown", 0, 4242, ""),
            ("root-chown", 0, 4242, ""),
            ("default", 1, 0, "chown: changing ownership of '{f}': Operation not permitted\n"),
        ]
        for i, (profile, exit_code, owner, err) in enumerate(rows):
            with self.subTest(profile=profile):
                f = self.root.write("/chown-target-%d" % i, "x")
                r = self.run_probe("chown", profile, [f])
                self.assertReply(r, exit_code, b"", err.format(f=f).encode())
                self.assertEqual(os.stat(f).st_uid, owner)

    def test_writable_and_read_only_directories(self):
        shm = "/dev/shm/cx-e2e-exec-%d" % os.getpid()
        self.addCleanup(lambda: os.path.exists(shm) and os.unlink(shm))
        paths = {
            "w": self.root.path("/w/f"),
            "other": self.root.path("/other/f"),
            "shm": shm,  # another mount: writable is whole-filesystem, recursively
            "etc": self.root.path(execlib.ETC + "/f"),
            "state": self.root.path(execlib.STATE + "/f"),
            "runs": self.root.path("/srv/runs/f"),
            "trust": self.root.path("/srv/trust/f"),
            "allow": self.root.path("/srv/allow/f"),
        }
        ok, ro = "ok", "Read-only file system"
        rows = [
            # profile,  w,  other, shm, etc, state, runs, trust, allow
            ("default", ok, ok,    ok,  ro,  ro,    ro,   ro,    ro),
            ("wr",      ok, ro,    ro,  ro,  ro,    ro,   ro,    ro),
            ("root",    ok, ok,    ok,  ro,  ro,    ro,   ro,    ro),
            ("root-wr", ok, ro,    ro,  ro,  ro,    ro,   ro,    ro),
        ]
        for row in rows:
            profile, want = row[0], dict(zip(paths, row[1:]))
            with self.subTest(profile=profile):
                for p in paths.values():
                    if os.path.exists(p):
                        os.unlink(p)
                r = self.run_probe("touch", profile, list(paths.values()))
                self.assertEqual((r.exit, r.err), (0, b""), r)
                got = dict(zip(paths, [line.split(": ", 1)[1] for line in
                                       r.out.decode().splitlines()]))
                self.assertEqual(got, want)
                # What the script wrote is on the host; what it could not write is not.
                for k, p in paths.items():
                    self.assertEqual(os.path.exists(p), want[k] == ok, p)
        # The script's mounts never reach the host's namespace, and the host can still write.
        self.assertEqual(execlib.own_mounts_under(self.root.dir), [])
        self.root.write(execlib.ETC + "/after", "host\n")

    def test_protected_directory_is_read_only_and_nosuid(self):
        etc = self.root.path(execlib.ETC)
        for profile in ("root", "wr"):
            with self.subTest(profile=profile):
                r = self.run_probe("mountopts", profile, [etc])
                self.assertEqual((r.exit, r.err), (0, b""), r)
                opts = r.out.decode().strip().split(",")
                self.assertIn("ro", opts, r)
                self.assertIn("nosuid", opts, r)

    def test_tmp_is_private_with_writable(self):
        host_file = os.path.join("/tmp", "cx-e2e-exec-host-%d" % os.getpid())
        with open(host_file, "w") as f:
            f.write("host\n")
        self.addCleanup(os.unlink, host_file)
        rows = [
            # profile, sees the host's file, its own file appears on the host
            ("wr", b"absent\nwrote\n", False),
            ("default", b"present\nwrote\n", True),  # no writable: /tmp is the host's
        ]
        for profile, out, shared in rows:
            with self.subTest(profile=profile):
                script_file = "/tmp/cx-e2e-exec-script-%d-%s" % (os.getpid(), profile)
                self.addCleanup(lambda p=script_file: os.path.exists(p) and os.unlink(p))
                r = self.run_probe("tmp", profile, [host_file, script_file])
                self.assertReply(r, 0, out, b"")
                self.assertEqual(os.path.exists(script_file), shared)

    def test_profile_application_failures(self):
        missing = self.root.path("/no-such-dir")
        rows = [
            # script, a word its one stderr line must name
            ("ids-missing-wr", missing),
            ("ids-ghost", "cx-no-such-user"),
        ]
        for script, word in rows:
            with self.subTest(script=script):
                r = self.ex.call(script)
                self.assertEqual((r.exit, r.out), (126, b""), r)
                err = r.err.decode()
                self.assertTrue(err.startswith("executor: ") and err.endswith("\n"), r)
                self.assertEqual(err.count("\n"), 1, r)
                self.assertIn(word, err)


class HostReadOnlyMounts(execlib.ExecTestCase):
    """`writable` keeps the listed paths as writable as they were, no more: a mount that is
    read-only where the executor runs stays read-only for the script, whether it is below a
    writable path or is one. The executor runs in a mount namespace of its own here, so these
    read-only mounts exist only for it."""

    SCRIPTS = {"touch-wr": execlib.Script(PROBES["touch"], "wr"),
               "touch-plain": execlib.Script(PROBES["touch"], "plain")}
    PROFILES = {"wr": "run_as = nobody\nwritable = {root}/w:{root}/ro-itself",
                "plain": "run_as = nobody"}
    START = False

    def test_rows(self):
        w, sub, itself = (self.root.path(p) for p in ("/w", "/w/ro-sub", "/ro-itself"))
        for d in (w, sub, itself):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o777)
        self.ex.start(setup=" && ".join(
            "mount --bind {d} {d} && mount -o remount,bind,ro {d}".format(d=d)
            for d in (sub, itself)))
        paths = {"w": w + "/f", "ro-sub": sub + "/f", "ro-itself": itself + "/f"}
        ok, ro = "ok", "Read-only file system"
        rows = [
            # script,       w,  ro-sub, ro-itself
            ("touch-plain", ok, ro,     ro),  # the executor's own view, unchanged
            ("touch-wr",    ok, ro,     ro),
        ]
        for row in rows:
            script, want = row[0], dict(zip(paths, row[1:]))
            with self.subTest(script=script):
                r = self.ex.call(script, list(paths.values()))
                self.assertEqual((r.exit, r.err), (0, b""), r)
                got = dict(zip(paths, [line.split(": ", 1)[1] for line in
                                       r.out.decode().splitlines()]))
                self.assertEqual(got, want)


class NotExecutable(execlib.ExecTestCase):
    """A run_as user that cannot execute the script: 126 and the original's line."""

    SCRIPTS = {
        "hidden-default": execlib.Script("#!/bin/sh\necho ran\n", "default", 0o700),
        "hidden-numeric": execlib.Script("#!/bin/sh\necho ran\n", "numeric", 0o700),
        "hidden-root": execlib.Script("#!/bin/sh\necho ran\n", "root", 0o700),
    }
    PROFILES = {"default": "run_as = nobody", "numeric": "run_as = 4242", "root": ""}

    def test_rows(self):
        # A 0755 script in a 0700 directory: also not executable by nobody.
        private = self.root.path("/opt/private")
        os.makedirs(private, mode=0o700)
        locked = os.path.join(private, "locked.sh")
        with open(locked, "w") as f:
            f.write("#!/bin/sh\necho ran\n")
        os.chmod(locked, 0o755)
        self.ex.write_allowlist("locked = %s profile=default\n" % locked)
        line = "executor: '%s' is not executable by the profile's run_as user (%s): " \
               "Permission denied\n"
        rows = [
            ("hidden-default", 126, b"", line % (self.ex.script_path("hidden-default"), "nobody")),
            ("hidden-numeric", 126, b"", line % (self.ex.script_path("hidden-numeric"), "4242")),
            ("locked", 126, b"", line % (locked, "nobody")),
            ("hidden-root", 0, b"ran\n", ""),  # root can run a 0700 root-owned script
        ]
        for script, exit_code, out, err in rows:
            with self.subTest(script=script):
                self.assertReply(self.ex.call(script), exit_code, out, err.encode())


if __name__ == "__main__":
    execlib.harness.main()
