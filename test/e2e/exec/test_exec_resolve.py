"""`ctrl-exec-exec resolve <agent.conf> <scripts.conf> <name>`: the executor's decision for one
script, as one line (agent-and-wire §4.8), and exit 2 on a config error.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import execlib  # noqa: E402

BASE = "port = 7443\ncert = /c.crt\nkey = /c.key\nca = /ca.crt\n"
NOBODY = "[profile default]\nrun_as = nobody\n"

# label, agent.conf after BASE, scripts.conf, name, expected stdout ("{s}": the scripts dir,
# "{root}": the root; "OK" rows spell the whole line).
DECISIONS = [
    ("default profile", NOBODY, "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable="),
    ("named profile, numeric run_as", NOBODY + "[profile n]\nrun_as = 4242\n",
     "x = {s}/x.sh profile=n\n", "x",
     "OK path={s}/x.sh|profile=n|run_as=4242|nnp=1|caps=|writable="),
    ("annotation before the path", NOBODY + "[profile n]\nrun_as = 4242\n",
     "x = profile=n {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=n|run_as=4242|nnp=1|caps=|writable="),
    ("no run_as", "[profile default]\ncaps = CAP_CHOWN\n", "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=|nnp=1|caps=CAP_CHOWN|writable="),
    ("caps split on commas and spaces",
     "[profile default]\nrun_as = nobody\ncaps = CAP_CHOWN,CAP_KILL  CAP_SETUID , CAP_NET_RAW\n",
     "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|"
     "caps=CAP_CHOWN,CAP_KILL,CAP_SETUID,CAP_NET_RAW|writable="),
    ("writable", "[profile default]\nrun_as = nobody\nwritable = /var/tmp/a:/srv/b\n",
     "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable=/var/tmp/a:/srv/b"),
    ("writable, trailing colon dropped", "[profile default]\nwritable = /srv/b:\n",
     "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=|nnp=1|caps=|writable=/srv/b"),
    ("later duplicate key wins", "[profile default]\nrun_as = nobody\nrun_as = 4242\n",
     "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=4242|nnp=1|caps=|writable="),
    ("later duplicate script wins", NOBODY, "x = {s}/old.sh\nx = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable="),
    ("every field", "[profile all]\nrun_as = nobody\nno_new_privileges = no\n"
     "caps = CAP_CHOWN\nwritable = /var/tmp\n" + NOBODY,
     "x = {s}/x.sh profile=all\n", "x",
     "OK path={s}/x.sh|profile=all|run_as=nobody|nnp=0|caps=CAP_CHOWN|writable=/var/tmp"),
    # script_dirs, both sides canonicalised.
    ("in script_dirs", "script_dirs = {s}\n" + NOBODY, "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable="),
    ("in the second of script_dirs", "script_dirs = {root}/other::{s}/\n" + NOBODY,
     "x = {s}/x.sh\n", "x",
     "OK path={s}/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable="),
    ("through a symlinked dir", "script_dirs = {s}\n" + NOBODY, "x = {root}/link/x.sh\n", "x",
     "OK path={root}/link/x.sh|profile=default|run_as=nobody|nnp=1|caps=|writable="),
    ("outside script_dirs", "script_dirs = {s}\n" + NOBODY, "x = {root}/other/x.sh\n", "x",
     "DENY not-in-script-dirs"),
    ("a prefix of the dir is not the dir", "script_dirs = {s}\n" + NOBODY,
     "x = {s}-evil/x.sh\n", "x", "DENY not-in-script-dirs"),
    ("out through ..", "script_dirs = {s}\n" + NOBODY, "x = {s}/../other/x.sh\n", "x",
     "DENY not-in-script-dirs"),
    # The allowlist.
    ("not in the allowlist", NOBODY, "x = {s}/x.sh\n", "y", "DENY not-allowlisted"),
    ("an empty allowlist", NOBODY, "", "x", "DENY not-allowlisted"),
    ("a name with a slash", NOBODY, "x = {s}/x.sh\n", "../x", "DENY not-allowlisted"),
    ("a relative path is skipped", NOBODY, "x = x.sh\n", "x", "DENY not-allowlisted"),
    ("two paths are skipped", NOBODY, "x = {s}/x.sh {s}/y.sh\n", "x", "DENY not-allowlisted"),
    # Profiles: no implicit default.
    ("undefined named profile", NOBODY, "x = {s}/x.sh profile=nope\n", "x",
     "DENY undefined-profile"),
    ("no [profile default]", "[profile other]\nrun_as = nobody\n", "x = {s}/x.sh\n", "x",
     "DENY undefined-profile"),
]

# no_new_privileges: on iff absent or 1|y|yes|true|on, case-insensitive.
NNP = [("", "1"), ("yes", "1"), ("Yes", "1"), ("TRUE", "1"), ("on", "1"), ("1", "1"),
       ("y", "1"), ("no", "0"), ("NO", "0"), ("off", "0"), ("0", "0"), ("false", "0"),
       ("maybe", "0")]

# label, agent.conf after BASE (or None: no agent.conf at all), scripts.conf (None: none),
# words stderr must hold.
CONFIG_ERRORS = [
    ("malformed line", NOBODY + "this is not a key line\n", "x = {s}/x.sh\n",
     ["Malformed config line", "this is not a key line"]),
    ("invalid run_as", "[profile default]\nrun_as = bad user\n", "x = {s}/x.sh\n",
     ["invalid run_as", "bad user"]),
    ("run_as out of range", "[profile default]\nrun_as = 4294967296\n", "x = {s}/x.sh\n",
     ["4294967296", "out of range"]),
    ("invalid caps", "[profile default]\ncaps = CHOWN\n", "x = {s}/x.sh\n",
     ["invalid caps entry", "CHOWN"]),
    ("relative writable", "[profile default]\nwritable = /a:rel/dir\n", "x = {s}/x.sh\n",
     ["rel/dir", "absolute"]),
    ("empty writable entry", "[profile default]\nwritable = /a::/b\n", "x = {s}/x.sh\n",
     ["absolute"]),
    ("no agent.conf", None, "x = {s}/x.sh\n", ["agent.conf"]),
    ("no scripts.conf", NOBODY, None, ["scripts.conf"]),
]


class Resolve(execlib.ExecTestCase):
    START = False

    def setUp(self):
        super().setUp()
        self.s = self.ex.scripts_dir
        for d in ("/other", "/opt/ctrl-exec-scripts-evil"):
            os.makedirs(self.root.path(d), exist_ok=True)
        for p in (self.s + "/x.sh", self.s + "/y.sh", self.s + "/old.sh",
                  self.root.path("/other/x.sh"), self.s + "-evil/x.sh"):
            with open(p, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(p, 0o755)
        os.symlink(self.s, self.root.path("/link"))

    def fill(self, text):
        return text.replace("{s}", self.s).replace("{root}", self.root.dir)

    def write(self, conf, scripts):
        for path, text in ((self.ex.conf, conf), (self.ex.scripts_conf, scripts)):
            if os.path.exists(path):
                os.unlink(path)
            if text is not None:
                with open(path, "w") as f:
                    f.write(self.fill(text))

    def test_decisions(self):
        for label, conf, scripts, name, out in DECISIONS:
            with self.subTest(label):
                self.write(BASE + conf, scripts)
                r = self.ex.resolve(name)
                self.assertEqual((r.rc, r.out), (0, self.fill(out) + "\n"), r)

    def test_no_new_privileges_values(self):
        for value, nnp in NNP:
            with self.subTest(value=value):
                line = "no_new_privileges = %s\n" % value if value else ""
                self.write(BASE + "[profile default]\n" + line, "x = {s}/x.sh\n")
                r = self.ex.resolve("x")
                self.assertEqual((r.rc, r.out), (0, self.fill(
                    "OK path={s}/x.sh|profile=default|run_as=|nnp=%s|caps=|writable=\n" % nnp)),
                    r)

    def test_config_errors_exit_2(self):
        for label, conf, scripts, words in CONFIG_ERRORS:
            with self.subTest(label):
                self.write(None if conf is None else BASE + conf, scripts)
                r = self.ex.resolve("x")
                self.assertEqual((r.rc, r.out), (2, ""), r)
                for w in words:
                    self.assertIn(w, r.err)

    def test_usage(self):
        r = self.root.run(["ctrl-exec-exec", "resolve", self.ex.conf])
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(r.out, "")


if __name__ == "__main__":
    execlib.harness.main()
