"""list-agents, edit-agent and unpair (dispatcher-and-api §4.14, §4.15, §4.19; transcript 09)
over registry files written as a Perl dispatcher writes them."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402
import pairlib  # noqa: E402

HEADER = "%-30s  %-16s  %-5s  %-8s  %-22s  %-24s  %s" % (
    "HOSTNAME", "IP", "PORT", "LOOKUP", "PAIRED", "CERT EXPIRY", "DAYS LEFT")


def expiry_in(days):
    t = time.gmtime(time.time() + days * 86400 + 3600)
    return time.strftime("%b ", t) + ("%2d" % t.tm_mday) + time.strftime(" %H:%M:%S %Y GMT", t)


class RegistryCli(harness.TestCase):
    def setUp(self):
        super().setUp()
        pairlib.write_dispatcher_conf(self.root)

    def record(self, name, **fields):
        rec = {"paired": "2026-11-25T04:17:27Z", "ip": "127.0.0.1", "dispatcher_serial": "2",
               "serial_status": "current", "reqid": "54f730cdc9e94690", "hostname": name,
               "serial_broadcast": "", "tags": {}, "serial_confirmed": "2026-11-25T04:17:27Z",
               "expiry": expiry_in(824), "lookup_by": "hostname", "port": 7443}
        rec.update(fields)
        self.root.write("/var/lib/ctrl-exec/agents/%s.json" % name, json.dumps(rec))
        return rec

    def test_list_agents_empty_human_and_json(self):
        for args in ([], ["--json"]):
            r = self.root.run(["ced", "list-agents"] + args)
            self.assertEqual((r.rc, r.out), (0, "No registered agents.\n"))
        vm = self.record("vm")
        self.record("web-02", ip="", port=7450, lookup_by="ip", expiry="garbage",
                    tags={"env": "prod"})
        self.root.write("/var/lib/ctrl-exec/agents/broken.json", "{not json")
        r = self.root.run(["ced", "list-agents"])
        self.assertEqual(r.rc, 0, r)
        lines = r.out.split("\n")
        self.assertEqual(lines[0], HEADER)
        self.assertEqual(lines[1], "-" * 112)
        self.assertEqual(lines[2], "%-30s  %-16s  %-5s  %-8s  %-22s  %-24s  %s" % (
            "vm", "127.0.0.1", "7443", "hostname", "2026-11-25T04:17:27Z", vm["expiry"], "824"))
        self.assertEqual(lines[3], "%-30s  %-16s  %-5s  %-8s  %-22s  %-24s  %s" % (
            "web-02", "?", "7450", "ip", "2026-11-25T04:17:27Z", "garbage", "?"))
        self.assertEqual(lines[4:], [""])
        r = self.root.run(["ced", "list-agents", "--json"])
        got = json.loads(r.out)
        self.assertEqual([a["hostname"] for a in got], ["vm", "web-02"])
        self.assertEqual(got[0], vm)  # the raw record, every field of §3.1

    def test_tag_filter(self):
        self.record("a", tags={"env": "prod", "role": "db"})
        self.record("b", tags={"env": "prod", "role": "web"})
        self.record("c")
        rows = [
            ("env=prod", ["a", "b"]), ("env=prod,role=db", ["a"]), ("role=web", ["b"]),
            ("env=dev", None),
        ]
        for flt, names in rows:
            r = self.root.run(["ced", "list-agents", "--tags", flt, "--json"])
            self.assertEqual(r.rc, 0, r)
            if names is None:
                self.assertEqual(r.out, "No agents match the tag filter.\n")
            else:
                self.assertEqual([a["hostname"] for a in json.loads(r.out)], names, flt)
        for flt, err in (("env", "Invalid --tags filter: invalid tag filter 'env' "
                                 "(expected key=value)"),
                         (",", "Invalid --tags filter: empty tag filter "
                               "(expected key=value[,key=value...])")):
            r = self.root.run(["ced", "list-agents", "--tags", flt])
            self.assertEqual((r.rc, r.err), (255, err + "\n"))

    def test_edit_agent(self):
        self.record("web-01", ip="10.0.0.1")
        self.record("db-01")
        r = self.root.run(["ced", "edit-agent", "web-01", "--ip", "10.0.0.9", "--agent-port",
                           "7450", "--lookup-by", "ip"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "Updated agent 'web-01'.\n  ip:        10.0.0.9\n"
                         "  port:      7450\n  lookup_by: ip\n")
        self.assertIn("ACTION=edit-agent AGENT=web-01 IP=10.0.0.9 LOOKUP_BY=ip PORT=7450", r.err)
        rec = json.loads(self.root.read("/var/lib/ctrl-exec/agents/web-01.json"))
        self.assertEqual((rec["ip"], rec["port"], rec["lookup_by"], rec["dispatcher_serial"]),
                         ("10.0.0.9", 7450, "ip", "2"))
        r = self.root.run(["ced", "edit-agent", "web-01", "--rename", "web-01.example.com",
                           "--json"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(json.loads(r.out)["hostname"], "web-01.example.com")
        self.assertIn("ACTION=edit-agent AGENT=web-01.example.com RENAMED_FROM=web-01", r.err)
        self.assertFalse(self.root.exists("/var/lib/ctrl-exec/agents/web-01.json"))
        self.assertTrue(self.root.exists("/var/lib/ctrl-exec/agents/web-01.example.com.json"))
        r = self.root.run(["ced", "edit-agent", "web-01.example.com", "--rename", "w1"])
        self.assertIn("  renamed from: web-01.example.com\n", r.out)

        rows = [
            (["w1"], "Nothing to change. Pass at least one of --rename, --ip, --agent-port, "
                     "--lookup-by."),
            (["w1", "--lookup-by", "x"], "--lookup-by must be 'ip' or 'hostname'"),
            (["w1", "--agent-port", "70000"], "--agent-port must be a port number (1-65535)"),
            (["w1", "--ip", ""], "--ip must not be empty"),
            (["nope", "--ip", "1.2.3.4"], "Edit failed: No registry entry for 'nope'"),
            (["w1", "--rename", "db-01"], "Edit failed: agent 'db-01' already exists"),
            (["w1", "--rename", "../x"], "Edit failed: invalid agent name '../x' (use letters, "
                                         "digits, '.', '-', '_')"),
        ]
        for args, err in rows:
            r = self.root.run(["ced", "edit-agent"] + args)
            self.assertEqual((r.rc, r.err.splitlines()[-1] if r.err else ""), (255, err), args)

    def test_unpair(self):
        rec = self.record("web-01")
        r = self.root.run(["ced", "unpair", "web-01"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out, "Unregistered 'web-01'.\nWARNING: Agent certificate remains "
                         "valid until: %s\nDecommission the agent promptly or add its serial "
                         "to the revocation list.\n" % rec["expiry"])
        self.assertIn('ACTION=unpair AGENT=web-01 EXPIRY="%s"' % rec["expiry"], r.err)
        self.assertFalse(self.root.exists("/var/lib/ctrl-exec/agents/web-01.json"))
        r = self.root.run(["ced", "unpair", "web-01"])
        self.assertEqual((r.rc, r.err), (255, "Unpair failed: No registry entry for 'web-01'\n"))
        r = self.root.run(["ced", "unpair"])
        self.assertEqual((r.rc, r.err), (255, "Usage: ctrl-exec-dispatcher unpair <hostname>\n"))


if __name__ == "__main__":
    harness.main()
