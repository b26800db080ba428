"""The Debian packages as built from the tree: names, versions, relations, file lists, and
lintian with no error or warning left (each override in conf/deb/lintian says why)."""
import os
import subprocess
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deblib  # noqa: E402
import harness  # noqa: E402

SKIP = deblib.missing_prerequisites(extra_tools=("lintian",))


@unittest.skipIf(SKIP, SKIP or "")
class PackagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="cx-deb-out-")
        cls.debs = deblib.build_packages(cls.out)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def contents(self, package):
        out = subprocess.run(["dpkg-deb", "-c", self.debs[package]], capture_output=True,
                             text=True, check=True).stdout
        rows = {}
        for line in out.splitlines():
            f = line.split()
            path = f[5][1:]
            rows[path.rstrip("/") or "/"] = (f[0], f[7] if len(f) > 7 else None)
        return rows

    def test_names_versions_and_relations(self):
        self.assertEqual(sorted(self.debs),
                         ["ctrl-exec-agent", "ctrl-exec-common", "ctrl-exec-dispatcher"])
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
        version = deblib.deb_field(self.debs["ctrl-exec-common"], "Version")
        self.assertTrue(deblib.compare_versions(version, "gt", "0.12.3"), version)
        for name, deb in self.debs.items():
            self.assertEqual(deblib.deb_field(deb, "Version"), version, name)
            self.assertEqual(deblib.deb_field(deb, "Architecture"), arch, name)
        for side in ("ctrl-exec-agent", "ctrl-exec-dispatcher"):
            depends = deblib.deb_field(self.debs[side], "Depends")
            self.assertIn("ctrl-exec-common (= %s)" % version, depends)
            self.assertIn("adduser", depends)
        disp = self.debs["ctrl-exec-dispatcher"]
        self.assertEqual(deblib.deb_field(disp, "Provides"), "ctrl-exec")
        # The original's agent and dispatcher depend on exactly their ctrl-exec-common, so our
        # common (the binary, no Perl library) replaces theirs only together with them; a
        # Breaks on them would only stop `dpkg -i common agent` (test_upgrade_original).
        self.assertEqual(deblib.deb_field(self.debs["ctrl-exec-common"], "Breaks"), "")
        self.assertEqual(deblib.deb_field(disp, "Breaks"), "ctrl-exec (<< 0.8.11~)")
        self.assertEqual(deblib.deb_field(disp, "Replaces"), "ctrl-exec (<< 0.8.11~)")

    def test_file_lists(self):
        common = self.contents("ctrl-exec-common")
        mode, _ = common["/usr/bin/ctrl-exec"]
        self.assertEqual(mode, "-rwxr-xr-x")
        file_out = subprocess.run(["dpkg-deb", "--fsys-tarfile", self.debs["ctrl-exec-common"]],
                                  capture_output=True, check=True).stdout
        self.assertGreater(len(file_out), 1000000)
        agent = self.contents("ctrl-exec-agent")
        for link, target in (("/usr/bin/ctrl-exec-agent", "ctrl-exec"), ("/usr/bin/cea", "ctrl-exec"),
                             ("/usr/sbin/ctrl-exec-exec", "../bin/ctrl-exec")):
            self.assertEqual(agent[link], ("lrwxrwxrwx", target), link)
        for unit in ("ctrl-exec-agent.service", "ctrl-exec-exec.service",
                     "ctrl-exec-agent-renew.service", "ctrl-exec-agent-renew.timer"):
            self.assertIn("/lib/systemd/system/" + unit, agent)
        disp = self.contents("ctrl-exec-dispatcher")
        for link in ("ctrl-exec-dispatcher", "ced", "ctrl-exec-api", "ctrl-exec-pairing"):
            self.assertEqual(disp["/usr/bin/" + link], ("lrwxrwxrwx", "ctrl-exec"), link)
        for unit in ("ctrl-exec-api.service", "ctrl-exec-maintenance.service",
                     "ctrl-exec-maintenance.timer"):
            self.assertIn("/lib/systemd/system/" + unit, disp)
        # No file in two packages, and nothing left under the build's prefix.
        seen = {}
        for name in self.debs:
            for path, (mode, _) in self.contents(name).items():
                self.assertFalse(path.startswith("/usr/local"), path)
                if not mode.startswith("d"):
                    self.assertNotIn(path, seen, "%s in %s and %s" % (path, seen.get(path), name))
                    seen[path] = name
        conffiles = {}
        for name in ("ctrl-exec-agent", "ctrl-exec-dispatcher"):
            out = subprocess.run(["dpkg-deb", "--info", self.debs[name], "conffiles"],
                                 capture_output=True, text=True, check=True).stdout
            conffiles[name] = sorted(out.split())
        self.assertEqual(conffiles["ctrl-exec-agent"],
                         ["/etc/ctrl-exec-agent/agent.conf", "/etc/ctrl-exec-agent/scripts.conf"])
        self.assertEqual(conffiles["ctrl-exec-dispatcher"],
                         ["/etc/ctrl-exec/auth-hook", "/etc/ctrl-exec/ctrl-exec.conf"])

    def test_scripts_are_shellcheck_clean(self):
        if not shutil.which("shellcheck"):
            self.skipTest("shellcheck is not installed (.ci/install-deps installs it)")
        deb_dir = os.path.dirname(deblib.BUILD_SCRIPT)
        for name in sorted(os.listdir(deb_dir)):
            if name.split(".")[-1] in ("preinst", "postinst", "prerm", "postrm") or name == "build":
                shell = "bash" if name == "build" else "sh"
                p = subprocess.run(["shellcheck", "--shell=" + shell, os.path.join(deb_dir, name)],
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stdout)

    def test_lintian_clean(self):
        p = subprocess.run(["lintian", "--fail-on", "error,warning", "--info", "--display-info"]
                           + sorted(self.debs.values()), capture_output=True, text=True,
                           timeout=600)
        tags = [line for line in p.stdout.splitlines() if line[:2] in ("E:", "W:", "I:")]
        print("lintian: exit %d, %d tags%s" % (p.returncode, len(tags),
                                               "".join("\n  " + t for t in tags)))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(tags, [])


if __name__ == "__main__":
    harness.main()
