"""The etcd backend on a three-member cluster (issue 17): with one member killed every operation
still works through the endpoint list; 50 approvals racing on two dispatchers issue 50 distinct
serials; and the state exported from a files dispatcher, imported into etcd, lists the same."""
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import displib  # noqa: E402
import etcdlib  # noqa: E402
import harness  # noqa: E402
import pairlib  # noqa: E402


@unittest.skipUnless(etcdlib.etcd_binary(), "etcd is not installed (Debian: etcd-server)")
class Cluster(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scope = harness.TestCase("run")
        cls.scope.setUp()
        cls.members = etcdlib.cluster(3)
        for m in cls.members:
            cls.scope.addCleanup(m.cleanup)
        endpoints = ",".join(m.url for m in cls.members)
        cls.state = ("state_backend = etcd\netcd_endpoints = %s\netcd_prefix = /c/\n"
                     "etcd_timeout = 3\netcd_dial_timeout = 1\n" % endpoints)
        cls.fleet = displib.Fleet(cls.scope, n=2, dispatcher_extra=cls.state)

    @classmethod
    def tearDownClass(cls):
        cls.scope.doCleanups()

    def test_1_one_member_down_is_invisible(self):
        # The first member in the list, where every request starts.
        os.kill(self.members[0].proc.pid, signal.SIGKILL)
        self.members[0].proc.wait(10)
        try:
            names = self.fleet.names()
            r = self.fleet.ced("list-agents")
            self.assertEqual(r.rc, 0, r)
            for n in names:
                self.assertIn(n, r.out)
            r = self.fleet.ced("run", *names, "noop")
            self.assertEqual(r.rc, 0, r)
            r = self.fleet.ced("run", names[0], "noop", "--async", "--json")
            self.assertEqual(r.rc, 0, r)
            reqid = json.loads(r.out)["reqid"]
            r = self.fleet.ced("wait", reqid, "--timeout", "30")
            self.assertEqual(r.rc, 0, r)
            r = self.fleet.ced("ping", *names)
            self.assertEqual(r.rc, 0, r)
            self.assertEqual(self.fleet.ced("list-locks").rc, 0)
        finally:
            self.members[0].start()

    def test_2_racing_approvals_issue_distinct_serials(self):
        """50 CSRs, approved by two dispatcher processes at once (two roots sharing the CA
        files and the etcd cluster), as fast as they go."""
        disp = self.fleet.disp
        other = harness.Root("disp2")
        self.addCleanup(other.cleanup)
        # The second dispatcher: the same CA and identity files, its own root.
        shutil.copytree(disp.path("/etc/ctrl-exec"), other.path("/etc/ctrl-exec"),
                        dirs_exist_ok=True)
        conf = disp.read("/etc/ctrl-exec/ctrl-exec.conf").replace(disp.dir, other.dir)
        other.write("/etc/ctrl-exec/ctrl-exec.conf", conf)
        # Queue 50 requests with real CSRs in the shared queue (through `state import`).
        ids = []
        key = os.path.join(disp.dir, "race.key")
        harness.sh("openssl genrsa -out %s 2048 2>/dev/null" % key)
        for i in range(50):
            csr = harness.sh("openssl req -new -key %s -subj /CN=race%d" % (key, i)).stdout
            ids.append(self.queue(disp, "race%d" % i, csr))
        procs = []
        for root, mine in ((disp, ids[0::2]), (other, ids[1::2])):
            script = " && ".join("%s approve %s" % (os.path.join(root.bin, "ced"), r)
                                 for r in mine)
            procs.append(subprocess.Popen(["sh", "-c", script], env=root.env, cwd=root.dir,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for p in procs:
            out, err = p.communicate(timeout=240)
            self.assertEqual(p.returncode, 0, err.decode()[-2000:])
        # The certificates handed to the listener: one per request, 50 distinct serials, each
        # claimed in etcd.
        serials = []
        for reqid in ids:
            r = subprocess.run(["etcdctl", "--endpoints", self.members[1].url, "get",
                                "/c/pairing/%s.approved" % reqid, "--print-value-only"],
                               capture_output=True, text=True, timeout=10)
            cert = json.loads(r.stdout)["cert"]
            out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert,
                                 capture_output=True, text=True).stdout
            serials.append(out.strip().split("=", 1)[1].lower())
        self.assertEqual(len(set(serials)), 50)
        issued = {k.rsplit("/", 1)[1] for k in self.members[1].keys("/c/ca/issued/")}
        self.assertTrue(set(s.lstrip("0") for s in serials) <= set(i.lstrip("0") for i in issued),
                        (serials[:3], sorted(issued)[:3]))

    def queue(self, root, name, csr):
        reqid = "%016x" % (0xfeed000000000000 + int(name[4:]))
        doc = {"ctrl_exec_state": 1, "agents": {}, "runs": {}, "rotation": None,
               "pairing": {reqid: {"id": reqid, "hostname": name, "ip": "127.0.0.1",
                                   "source_ip": "127.0.0.1", "csr": csr,
                                   "received": "2026-12-06T00:00:00Z", "code": "123456",
                                   "reverse_dns": "", "reverse_confirmed": 0}}}
        r = root.run(["ced", "state", "import", "/dev/stdin", "--apply"], input=json.dumps(doc))
        self.assertEqual(r.rc, 0, r)
        return reqid

    def test_3_export_from_files_import_into_etcd(self):
        files = harness.Root("files")
        self.addCleanup(files.cleanup)
        pairlib.write_dispatcher_conf(files)
        for i in range(3):
            files.write("/var/lib/ctrl-exec/agents/f%d.example.json" % i,
                        json.dumps({"hostname": "f%d.example" % i, "ip": "10.9.0.%d" % i,
                                    "tags": {"n": str(i)}}) + "\n")
        dump = os.path.join(files.dir, "dump.json")
        self.assertEqual(files.run(["ced", "state", "export", dump]).rc, 0)
        etcd = harness.Root("etcd")
        self.addCleanup(etcd.cleanup)
        pairlib.write_dispatcher_conf(etcd, self.state.replace("/c/", "/import/"))
        r = etcd.run(["ced", "state", "import", dump, "--apply"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("agents:            3 new", r.out)
        self.assertEqual(etcd.run(["ced", "list-agents"]).out, files.run(["ced", "list-agents"]).out)
        self.assertEqual(etcd.run(["ced", "list-agents", "--json"]).out,
                         files.run(["ced", "list-agents", "--json"]).out)
        self.assertIn("agents:            0 new, 0 changed, 3 unchanged",
                      etcd.run(["ced", "state", "import", dump]).out)


if __name__ == "__main__":
    harness.main()
