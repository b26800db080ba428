"""setup-ca and setup-ctrl-exec (dispatcher-and-api §4.12, §4.13; transcripts 01, 02): output,
files and modes, key types, serials a Perl peer reads correctly, refusals and the re-pair prompt."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402
import pairlib  # noqa: E402


def x509(path, *fields):
    return harness.sh("openssl x509 -noout %s -in %s" % (" ".join(fields), path)).stdout


class SetupCa(harness.TestCase):
    def test_creates_the_ca_with_exact_output_and_modes(self):
        pairlib.write_dispatcher_conf(self.root)
        r = self.root.run(["ced", "setup-ca"])
        etc = self.root.path("/etc/ctrl-exec")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "Setting up dispatcher CA...\nCA created:\n  Key:  %s/ca.key\n"
                         "  Cert: %s/ca.crt\nKeep ca.key secure - it never leaves this host.\n"
                         % (etc, etc))
        self.assertEqual(pairlib.mode(etc + "/ca.key"), 0o600)
        self.assertEqual(pairlib.mode(etc + "/ca.crt"), 0o644)
        self.assertEqual(pairlib.mode(etc + "/ca.serial"), 0o600)
        text = x509(etc + "/ca.crt", "-subject", "-issuer", "-dates", "-text")
        self.assertIn("subject=CN = ctrl-exec CA", text)
        self.assertIn("issuer=CN = ctrl-exec CA", text)
        self.assertIn("CA:TRUE", text)
        self.assertIn("ASN1 OID: prime256v1", text)  # P-256 by default
        not_after = re.search(r"notAfter=(.*)", text).group(1)
        days = (time.mktime(time.strptime(not_after, "%b %d %H:%M:%S %Y GMT")) - time.time()) / 86400
        self.assertAlmostEqual(days, 3650, delta=1.5)
        # ca.serial is OpenSSL's form (uppercase hex, whole bytes) and has a hex letter.
        serial = self.root.read("/etc/ctrl-exec/ca.serial")
        self.assertRegex(serial, r"^([0-9A-F]{2})+\n$")
        self.assertRegex(serial, r"[A-F]")

    def test_refuses_to_overwrite_unless_forced(self):
        pairlib.write_dispatcher_conf(self.root)
        self.assertEqual(self.root.run(["ced", "setup-ca"]).rc, 0)
        before = self.root.read("/etc/ctrl-exec/ca.key")
        r = self.root.run(["ced", "setup-ca"])
        self.assertEqual(r.rc, 255)
        self.assertEqual(r.err, "CA already exists at '%s'. Use --force to overwrite.\n"
                         % self.root.path("/etc/ctrl-exec/ca.key"))
        self.assertEqual(self.root.read("/etc/ctrl-exec/ca.key"), before)
        r = self.root.run(["ced", "setup-ca", "--force"])
        self.assertEqual(r.rc, 0, r)
        self.assertNotEqual(self.root.read("/etc/ctrl-exec/ca.key"), before)

    def test_works_without_a_config_file(self):
        r = self.root.run(["ced", "setup-ca"])
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(self.root.exists("/etc/ctrl-exec/ca.crt"))

    def test_key_type_rsa_and_bad_key_type(self):
        r = self.root.run(["ced", "setup-ca", "--key-type", "rsa"], timeout=180)
        self.assertEqual(r.rc, 0, r)
        text = x509(self.root.path("/etc/ctrl-exec/ca.crt"), "-text")
        self.assertIn("Public-Key: (4096 bit)", text)
        r = self.root.run(["ced", "setup-ca", "--force", "--key-type", "dsa"])
        self.assertEqual(r.rc, 2)
        self.assertIn("--key-type must be 'ec' or 'rsa'", r.err)


class SetupCtrlExec(harness.TestCase):
    def setUp(self):
        super().setUp()
        pairlib.write_dispatcher_conf(self.root)
        self.etc = self.root.path("/etc/ctrl-exec")

    def test_needs_the_ca(self):
        r = self.root.run(["ced", "setup-ctrl-exec"])
        self.assertEqual(r.rc, 255)
        self.assertEqual(r.err, "CA key not found at '%s/ca.key' - run setup-ca first\n" % self.etc)

    def test_needs_the_config(self):
        os.unlink(self.root.path("/etc/ctrl-exec/ctrl-exec.conf"))
        r = self.root.run(["ced", "setup-ctrl-exec"])
        self.assertEqual(r.rc, 255)
        self.assertIn("Cannot open config '%s/ctrl-exec.conf'" % self.etc, r.err)

    def test_issues_the_dispatcher_cert(self):
        self.assertEqual(self.root.run(["ced", "setup-ca"]).rc, 0)
        r = self.root.run(["ced", "setup-ctrl-exec"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "Generating dispatcher certificate...\ndispatcher cert created:\n"
                         "  Key:  %s/dispatcher.key\n  Cert: %s/dispatcher.crt\n"
                         "Run 'ctrl-exec-dispatcher pairing-mode' to re-pair agents as needed.\n"
                         % (self.etc, self.etc))
        self.assertEqual(pairlib.mode(self.etc + "/dispatcher.key"), 0o600)
        crt = self.etc + "/dispatcher.crt"
        v = harness.sh("openssl verify -CAfile %s/ca.crt %s" % (self.etc, crt))
        self.assertIn(": OK", v.stdout)
        text = x509(crt, "-subject", "-serial", "-enddate")
        self.assertIn("subject=CN = ctrl-exec-dispatcher", text)
        not_after = re.search(r"notAfter=(.*)", text).group(1)
        days = (time.mktime(time.strptime(not_after, "%b %d %H:%M:%S %Y GMT")) - time.time()) / 86400
        self.assertAlmostEqual(days, 825, delta=1.5)
        # The serial contains a hex letter, so the original's canon() leaves it unchanged
        # (agent-and-wire §4.2.1), and it is recorded in ca.serial for a Perl signer.
        serial = re.search(r"serial=([0-9A-F]+)", text).group(1)
        self.assertRegex(serial, r"[A-F]")
        self.assertEqual(self.root.read("/etc/ctrl-exec/ca.serial"), serial + "\n")
        # Random serials: a second cert gets another one.
        r = self.root.run(["ced", "setup-ctrl-exec"])
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.out.startswith(
            "Existing dispatcher cert found. No registered agents - replacing.\n"), r.out)
        self.assertNotEqual(re.search(r"serial=([0-9A-F]+)", x509(crt, "-serial")).group(1),
                            serial)

    def test_asks_before_replacing_a_cert_agents_trust(self):
        self.assertEqual(self.root.run(["ced", "setup-ca"]).rc, 0)
        self.assertEqual(self.root.run(["ced", "setup-ctrl-exec"]).rc, 0)
        self.root.write("/var/lib/ctrl-exec/agents/web-01.json", '{"hostname":"web-01"}')
        self.root.write("/var/lib/ctrl-exec/agents/web-02.json", '{"hostname":"web-02"}')
        before = self.root.read("/etc/ctrl-exec/dispatcher.crt")
        warning = ("WARNING: Existing dispatcher cert found.\n"
                   "  2 registered agents will require re-pairing after this operation.\n"
                   "  Operations (run/ping) continue to work until agent certs expire.\n"
                   "  /capabilities will be rejected by agents until re-paired.\n\n"
                   "Proceed? [y/N]: ")
        for answer in ("n\n", "", "yes\n"):
            r = self.root.run(["ced", "setup-ctrl-exec"], input=answer)
            self.assertEqual((r.rc, r.out), (0, warning + "Aborted.\n"), answer)
            self.assertEqual(self.root.read("/etc/ctrl-exec/dispatcher.crt"), before)
        r = self.root.run(["ced", "setup-ctrl-exec"], input="Y\n")
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.out.startswith(warning + "Generating dispatcher certificate...\n"))
        self.assertNotEqual(self.root.read("/etc/ctrl-exec/dispatcher.crt"), before)


if __name__ == "__main__":
    harness.main()
