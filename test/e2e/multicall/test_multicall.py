"""The multi-call binary: --list, --install, and every alias reaching its applet."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

APPLETS = {
    "ctrl-exec-dispatcher": "ctrl-exec-dispatcher", "ced": "ctrl-exec-dispatcher",
    "ctrl-exec-agent": "ctrl-exec-agent", "cea": "ctrl-exec-agent",
    "ctrl-exec-api": "ctrl-exec-api", "ctrl-exec-pairing": "ctrl-exec-pairing",
    "ctrl-exec-exec": "ctrl-exec-exec",
}


def version_of(path, *args):
    p = subprocess.run([path] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout


class MultiCall(harness.TestCase):
    def test_list_names_every_applet_and_alias(self):
        out = subprocess.run([harness.BINARY, "--list"], capture_output=True, text=True).stdout
        for name in APPLETS:
            self.assertIn(name, out)

    def test_install_creates_every_alias_idempotently(self):
        d = tempfile.mkdtemp(dir=self.root.dir)
        for _ in range(2):  # running twice gives the same links and succeeds
            p = subprocess.run([harness.BINARY, "--install", d], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(d)), sorted(APPLETS))
        for alias, canonical in APPLETS.items():
            link = os.path.join(d, alias)
            self.assertTrue(os.path.islink(link))
            rc, out = version_of(link, "--version")
            self.assertEqual(rc, 0, alias)
            self.assertEqual(out, "%s 0.12.3\n" % canonical, alias)

    def test_install_refuses_to_overwrite_a_regular_file(self):
        d = tempfile.mkdtemp(dir=self.root.dir)
        with open(os.path.join(d, "ced"), "w") as f:
            f.write("not ours\n")
        p = subprocess.run([harness.BINARY, "--install", d], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ced", p.stderr)
        with open(os.path.join(d, "ced")) as f:
            self.assertEqual(f.read(), "not ours\n")

    def test_dispatch_on_first_argument(self):
        for alias, canonical in APPLETS.items():
            rc, out = version_of(harness.BINARY, alias, "--version")
            self.assertEqual((rc, out), (0, "%s 0.12.3\n" % canonical))
        rc, out = version_of(harness.BINARY, "--version")
        self.assertEqual((rc, out), (0, "ctrl-exec 0.12.3\n"))

    def test_unknown_applet_is_an_error(self):
        p = subprocess.run([harness.BINARY, "nope"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown applet 'nope'", p.stderr)

    def test_binary_is_static(self):
        p = subprocess.run(["file", "-L", harness.BINARY], capture_output=True, text=True)
        if p.returncode != 0:
            self.skipTest("file(1) not available")
        if os.environ.get("CX_DYNAMIC_BUILD"):
            self.skipTest("dynamic development build")
        self.assertIn("statically linked", p.stdout)


if __name__ == "__main__":
    harness.main()
