"""`ced state export` / `ced state import` (issue 17): the lasting state of one dispatcher as a
document, imported into another (a dry run first, then --apply, then nothing left to do), with
the same `list-agents` output on both. With the files on both sides here; the etcd side is
tested with a real etcd in test/e2e/etcd."""
import json
import os
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pairing"))
import harness  # noqa: E402
import pairlib  # noqa: E402

AGENTS = {
    "web1": {"hostname": "web1", "ip": "10.0.0.1", "port": 7443, "lookup_by": "ip",
             "tags": {"role": "web"}, "paired": "2026-12-01T10:00:00Z"},
    "db1": {"hostname": "db1", "ip": "10.0.0.2", "port": 7450, "tags": {},
            "paired": "2026-12-02T10:00:00Z"},
}
RUN = {"reqid": "00aa11bb22cc33dd", "script": "noop", "mode": "sync", "status": "complete",
       "hosts": ["web1"], "results": [], "complete": True, "created": 1765000000}
PAIRING = {"id": "0011223344556677", "hostname": "new1", "ip": "10.0.0.9",
           "source_ip": "10.0.0.9", "csr": "x", "received": "2026-12-06T10:00:00Z",
           "code": "123456", "reverse_dns": "", "reverse_confirmed": 0}


class StateDump(harness.TestCase):
    def plant(self, root):
        for name, rec in AGENTS.items():
            root.write("/var/lib/ctrl-exec/agents/%s.json" % name, json.dumps(rec) + "\n")
        root.write("/var/lib/ctrl-exec/runs/%s.json" % RUN["reqid"], json.dumps(RUN) + "\n")
        root.write("/var/lib/ctrl-exec/pairing/%s.json" % PAIRING["id"],
                   json.dumps(PAIRING) + "\n")

    def test_export_then_import_dry_run_apply_and_again(self):
        src = self.root
        pairlib.write_dispatcher_conf(src)
        self.plant(src)
        dump = os.path.join(src.dir, "state.json")
        r = src.run(["ced", "state", "export", dump])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(stat.S_IMODE(os.stat(dump).st_mode), 0o600)
        doc = json.load(open(dump))
        self.assertEqual(doc["ctrl_exec_state"], 1)
        self.assertEqual(sorted(doc["agents"]), ["db1", "web1"])
        self.assertEqual(list(doc["runs"]), [RUN["reqid"]])
        self.assertEqual(list(doc["pairing"]), [PAIRING["id"]])
        self.assertIsNone(doc["rotation"])
        # Standard output gives the same document.
        self.assertEqual(json.loads(src.run(["ced", "state", "export"]).out), doc)

        dst = harness.Root("dst")
        self.addCleanup(dst.cleanup)
        pairlib.write_dispatcher_conf(dst)
        r = dst.run(["ced", "state", "import", dump])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("agents:            2 new, 0 changed, 0 unchanged", r.out)
        self.assertIn("runs:              1 new, 0 changed, 0 unchanged", r.out)
        self.assertIn("pairing requests:  1 new, 0 changed, 0 unchanged", r.out)
        self.assertIn("Nothing was written", r.out)
        self.assertFalse(dst.exists("/var/lib/ctrl-exec/agents/web1.json"))

        r = dst.run(["ced", "state", "import", dump, "--apply"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Imported into", r.out)
        r = dst.run(["ced", "state", "import", dump])
        self.assertIn("agents:            0 new, 0 changed, 2 unchanged", r.out)
        self.assertIn("runs:              0 new, 0 changed, 1 unchanged", r.out)
        self.assertEqual(dst.run(["ced", "list-agents"]).out, src.run(["ced", "list-agents"]).out)
        self.assertEqual(json.loads(dst.run(["ced", "status", RUN["reqid"], "--json"]).out),
                         json.loads(src.run(["ced", "status", RUN["reqid"], "--json"]).out))
        # A changed record is counted as changed.
        src.write("/var/lib/ctrl-exec/agents/db1.json",
                  json.dumps(dict(AGENTS["db1"], port=7451)) + "\n")
        self.assertEqual(src.run(["ced", "state", "export", dump]).rc, 0)
        r = dst.run(["ced", "state", "import", dump])
        self.assertIn("agents:            0 new, 1 changed, 1 unchanged", r.out)

    def test_refusals(self):
        pairlib.write_dispatcher_conf(self.root)
        bad = self.root.write("/bad.json", '{"agents":{}}')
        cases = [
            (["state"], 2, "Usage"),
            (["state", "import"], 2, "Usage"),
            (["state", "frobnicate"], 2, "Usage"),
            (["state", "export", "--apply"], 2, "--apply is for state import"),
            # Fatal errors exit 255, as every ced die() does.
            (["state", "import", bad], 255, "not a state document"),
            (["state", "import", "/nonexistent/x"], 255, "cannot read '/nonexistent/x'"),
        ]
        for args, rc, text in cases:
            with self.subTest(args=args):
                r = self.root.run(["ced"] + args)
                self.assertEqual(r.rc, rc, r)
                self.assertIn(text, r.err)


if __name__ == "__main__":
    harness.main()
