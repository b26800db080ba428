"""Two ctrl-exec-api instances and the CLI on one real etcd (issue 17): pairing through the
CLI lands in etcd, a run made through B is answered by A's /status, a lock held through A is
409 on B, a dispatcher killed with -9 loses its locks within the lease TTL and its run record
stays readable, and with etcd stopped the CLI and the API say so (exit 255, 503) and serve again
once it is back, without a restart."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
import apifix  # noqa: E402
import displib  # noqa: E402
import etcdlib  # noqa: E402
import harness  # noqa: E402

LOCK_TTL = 3


@unittest.skipUnless(etcdlib.etcd_binary(), "etcd is not installed (Debian: etcd-server)")
class TwoApisOneEtcd(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.scope = harness.TestCase("run")
        cls.scope.setUp()
        cls.etcd = etcdlib.Etcd()
        cls.scope.addCleanup(cls.etcd.cleanup)
        cls.ports = [harness.free_port(), harness.free_port()]
        state = ("state_backend = etcd\netcd_endpoints = %s\netcd_prefix = /ha/\n"
                 "etcd_lock_ttl = %d\netcd_timeout = 2\netcd_dial_timeout = 1\n"
                 % (cls.etcd.url, LOCK_TTL))
        cls.fleet = displib.Fleet(cls.scope, n=1, dispatcher_extra=state + "api_bind = 127.0.0.1\n"
                                  "api_port = %d\napi_auth_default = allow\n" % cls.ports[0])
        cls.host = cls.fleet.names()[0]
        root = cls.fleet.disp
        base = root.read("/etc/ctrl-exec/ctrl-exec.conf")
        cls.conf_b = root.write("/etc/ctrl-exec/api-b.conf",
                                base.replace("api_port = %d" % cls.ports[0],
                                             "api_port = %d" % cls.ports[1]))
        cls.api_a = cls.start_api(None)
        cls.api_b = cls.start_api(cls.conf_b)

    @classmethod
    def start_api(cls, conf):
        root = cls.fleet.disp
        args = ["ctrl-exec-api"] + (["--config", conf] if conf else [])
        proc = root.spawn(args)
        harness.wait_until(lambda: "listening on" in proc.out() or not proc.alive(), 10,
                           what="API startup")
        if not proc.alive():
            raise AssertionError("API did not start: %s" % proc.err())
        return proc

    @classmethod
    def tearDownClass(cls):
        cls.scope.doCleanups()

    def call(self, which, method, path, body=None):
        data = None if body is None else json.dumps(body)
        st, text, _ = harness.curl(apifix.url(self.ports[which], path), method=method, data=data,
                                   timeout=30)
        try:
            return st, json.loads(text)
        except ValueError:
            return st, text

    def test_1_pairing_and_registry_are_in_etcd(self):
        self.assertIn("/ha/agents/%s" % self.host, self.etcd.keys("/ha/"))
        self.assertFalse(self.fleet.disp.exists("/var/lib/ctrl-exec/agents/%s.json" % self.host))
        r = self.fleet.ced("list-agents")
        self.assertEqual(r.rc, 0, r)
        self.assertIn(self.host, r.out)

    def test_2_run_on_b_status_on_a(self):
        st, doc = self.call(1, "POST", "/run", {"hosts": [self.host], "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["results"][0]["stdout"], "ok\n")
        st, rec = self.call(0, "GET", "/status/" + doc["reqid"])
        self.assertEqual(st, 200, rec)
        self.assertEqual(rec["results"][0]["stdout"], "ok\n")
        # An async run submitted by the CLI (which stores a record for those) is seen by B.
        r = self.fleet.ced("run", self.host, "noop", "--async", "--json")
        self.assertEqual(r.rc, 0, r)
        reqid = json.loads(r.out)["reqid"]
        st, rec = self.call(1, "GET", "/status/" + reqid)
        self.assertEqual(st, 200, rec)
        self.assertEqual(rec["reqid"], reqid)

    def test_3_a_lock_held_through_a_is_409_on_b(self):
        slow = subprocess.Popen(
            ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
             json.dumps({"hosts": [self.host], "script": "sleeper", "args": ["3"]}),
             apifix.url(self.ports[0], "/run")], stdout=subprocess.PIPE)
        self.addCleanup(lambda: slow.poll() is None and slow.kill())
        harness.wait_until(lambda: any("sleeper" in k for k in self.etcd.keys("/ha/locks/")),
                           timeout=10, what="the lock in etcd")
        st, doc = self.call(1, "POST", "/run", {"hosts": [self.host], "script": "sleeper"})
        self.assertEqual(st, 409, doc)
        self.assertEqual(doc["conflicts"], ["%s:sleeper" % self.host])
        out, _ = slow.communicate(30)
        self.assertEqual(json.loads(out)["results"][0]["stdout"], "slept\n")
        self.assertEqual(self.etcd.keys("/ha/locks/"), [])  # released at once

    def test_4_a_killed_holder_loses_its_locks_within_the_ttl(self):
        slow = subprocess.Popen(
            ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
             json.dumps({"hosts": [self.host], "script": "sleeper", "args": ["20"]}),
             apifix.url(self.ports[0], "/run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: slow.poll() is None and slow.kill())
        harness.wait_until(lambda: any("sleeper" in k for k in self.etcd.keys("/ha/locks/")),
                           timeout=10, what="the lock in etcd")
        runs = [k for k in self.etcd.keys("/ha/runs/")]
        os.kill(self.api_a.pid, signal.SIGKILL)
        killed = time.monotonic()
        # B runs the same host+script once A's lease has run out.
        while True:
            st, doc = self.call(1, "POST", "/run", {"hosts": [self.host], "script": "sleeper",
                                                    "args": ["0"]})
            if st != 409 or time.monotonic() - killed > LOCK_TTL + 10:
                break
            time.sleep(0.3)
        self.assertEqual(st, 200, doc)
        self.assertLess(time.monotonic() - killed, LOCK_TTL + 10)
        # A's record of its run (submitted, never finished) is readable through B.
        mine = [k.rsplit("/", 1)[1] for k in runs]
        answers = [self.call(1, "GET", "/status/" + r) for r in mine]
        self.assertTrue(any(st == 200 for st, _ in answers), answers)
        type(self).api_a = self.start_api(None)

    def test_5_etcd_down_then_back(self):
        self.etcd.stop()
        try:
            r = self.fleet.ced("list-agents")
            self.assertEqual(r.rc, 255, r)
            self.assertIn("etcd unreachable: %s" % self.etcd.url, r.err)
            r = self.fleet.ced("run", self.host, "noop")
            self.assertEqual(r.rc, 255, r)
            self.assertIn(self.etcd.url, r.err)
            st, doc = self.call(1, "POST", "/run", {"hosts": [self.host], "script": "noop"})
            self.assertEqual(st, 503, doc)
            self.assertEqual(doc["error"], "state unavailable")
            self.assertIn(self.etcd.url, doc["detail"])
            st, doc = self.call(0, "GET", "/status/00aa11bb22cc33dd")
            self.assertEqual(st, 503, doc)
            self.assertIn(self.etcd.url, doc["detail"])
            # Nothing half-done: no lock left behind by the refused requests.
            self.assertEqual(self.fleet.ced("list-locks").rc, 255)
        finally:
            self.etcd.start()
        st, doc = self.call(1, "POST", "/run", {"hosts": [self.host], "script": "noop"})
        self.assertEqual(st, 200, doc)
        self.assertEqual(self.fleet.ced("list-agents").rc, 0)
        self.assertEqual(self.etcd.keys("/ha/locks/"), [])


if __name__ == "__main__":
    harness.main()
