"""The etcd client itself (src/etcdkv) against a real etcd (Debian's etcd-server), through
etcd-kv-driver: one client per driver process, kept while etcd is stopped, killed and restarted.
Put, get, list (past one page), remove, create-if-absent raced from several threads (one wins),
compare-and-swap (a counter raised from four threads loses no update), leases (kept alive past
their TTL, then expiring; etcd's own error text), a three-member cluster with members killed by
PID (every operation through the endpoint list; all down: one error naming each; back: the same
client works again). https with client certificates: test_tls.py, through the CLI."""
import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import etcdlib  # noqa: E402
import harness  # noqa: E402

DRIVER = os.environ.get("CX_ETCD_DRIVER") or os.path.join(
    os.path.dirname(harness.BINARY), "..", "test", "e2e", "etcd", "etcd-kv-driver")


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


class Driver:
    """An etcd-kv-driver process: op() sends one operation and returns its answer."""

    def __init__(self, endpoints, prefix="/t/", extra=()):
        self.proc = subprocess.Popen(
            [DRIVER, "--endpoints=" + ",".join(endpoints), "--prefix=" + prefix,
             "--dial-timeout-ms=500", "--timeout-ms=3000"] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.opened = self.read(10)

    def read(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("etcd-kv-driver gave no answer within %ss" % timeout)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("etcd-kv-driver exited: %r" % self.proc.poll())
        return json.loads(line)

    def op(self, name, timeout=60, **fields):
        fields["op"] = name
        self.proc.stdin.write(json.dumps(fields) + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def ok(self, name, **fields):
        r = self.op(name, **fields)
        if not r["ok"]:
            raise AssertionError("%s %r: %r" % (name, fields, r))
        return r

    def value(self, key):
        r = self.ok("get", key=key)
        return base64.b64decode(r["value"]) if r["found"] else None

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:  # it has exited already
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()


def kill(member):
    """Ends one member at once, by its PID."""
    os.kill(member.proc.pid, signal.SIGKILL)
    member.proc.wait(10)
    member.proc = None
    member.log.close()
    member.log = None


@unittest.skipUnless(etcdlib.etcd_binary(), "etcd is not installed (Debian: etcd-server)")
class OneMember(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Class cleanups all run, even when one fails: etcd is stopped whatever the driver did.
        cls.etcd = etcdlib.Etcd()
        cls.addClassCleanup(cls.etcd.cleanup)
        cls.driver = Driver([cls.etcd.url])
        cls.addClassCleanup(cls.driver.close)

    def test_opened(self):
        self.assertEqual(self.driver.opened, {"ok": True, "opened": "etcd " + self.etcd.url})

    def test_put_get_list_remove(self):
        d = self.driver
        data = bytes(range(256))
        d.ok("put", key="basic/bin", value=b64(data))
        d.ok("put", key="basic/empty", value="")
        self.assertEqual(d.value("basic/bin"), data)
        self.assertEqual(d.value("basic/empty"), b"")
        got = d.ok("get", key="basic/bin")
        self.assertGreater(got["revision"], 0)
        # Under the prefix, as another client sees it.
        self.assertEqual(self.etcd.keys("/t/basic/"), ["/t/basic/bin", "/t/basic/empty"])
        kvs = d.ok("list", prefix="basic/")["kvs"]
        self.assertEqual([k["key"] for k in kvs], ["basic/bin", "basic/empty"])
        self.assertEqual(base64.b64decode(kvs[0]["value"]), data)
        self.assertEqual(d.ok("list", prefix="nothing/")["kvs"], [])
        self.assertTrue(d.ok("remove", key="basic/bin")["done"])
        self.assertFalse(d.ok("remove", key="basic/bin")["done"])
        self.assertIsNone(d.value("basic/bin"))

    def test_list_past_one_page(self):
        # The gateway is asked for 1,000 keys at a time.
        d = self.driver
        names = ["page/%04d" % i for i in range(1003)]
        for n in names:
            d.ok("put", key=n, value=b64(n))
        kvs = d.ok("list", prefix="page/")["kvs"]
        self.assertEqual([k["key"] for k in kvs], names)
        self.assertEqual(base64.b64decode(kvs[1002]["value"]).decode(), names[1002])

    def test_create_if_absent_raced(self):
        d = self.driver
        for threads in (2, 2, 8, 16):
            key = "race/%d-%d" % (threads, time.monotonic_ns())
            r = d.ok("race_create", key=key, threads=threads)
            self.assertEqual(r["errors"], [])
            self.assertEqual(len(r["created"]), 1, r)
            self.assertEqual(d.value(key).decode(), "thread %d" % r["created"][0])
        self.assertFalse(d.ok("create", key=key, value=b64("again"))["done"])

    def test_compare_and_swap(self):
        d = self.driver
        d.ok("put", key="cas/k", value=b64("1"))
        rev = d.ok("get", key="cas/k")["revision"]
        self.assertFalse(d.ok("replace", key="cas/k", revision=rev + 1000, value=b64("x"))["done"])
        self.assertFalse(d.ok("replace", key="cas/k", revision=0, value=b64("x"))["done"])
        self.assertEqual(d.value("cas/k"), b"1")
        self.assertTrue(d.ok("replace", key="cas/k", revision=rev, value=b64("2"))["done"])
        self.assertFalse(d.ok("replace", key="cas/k", revision=rev, value=b64("3"))["done"])
        self.assertEqual(d.value("cas/k"), b"2")
        # 4 threads x 25 increments by get + replace: no update lost.
        r = d.ok("increment", key="cas/counter", threads=4, times=25)
        self.assertEqual(r["errors"], [])
        self.assertEqual(r["value"], "100")
        # move: both or neither.
        rev = d.ok("get", key="cas/k")["revision"]
        d.ok("put", key="cas/taken", value=b64("t"))
        self.assertFalse(d.ok("move", key="cas/k", revision=rev, to="cas/taken",
                              value=b64("m"))["done"])
        self.assertTrue(d.ok("move", key="cas/k", revision=rev, to="cas/moved",
                             value=b64("m"))["done"])
        self.assertIsNone(d.value("cas/k"))
        self.assertEqual(d.value("cas/moved"), b"m")

    def test_leases(self):
        d = self.driver
        lease = d.ok("grant", ttl=2)["lease"]
        d.ok("put", key="lease/kept", value=b64("x"), lease=lease)
        # Kept alive for twice its TTL, the key stays.
        end = time.monotonic() + 4
        while time.monotonic() < end:
            d.ok("keepalive", lease=lease)
            self.assertIsNotNone(d.value("lease/kept"))
            time.sleep(0.5)
        # Left alone, it ends and takes its key.
        harness.wait_until(lambda: d.value("lease/kept") is None, timeout=10,
                           what="the lease's key to go")
        r = d.op("keepalive", lease=lease)
        self.assertEqual((r["ok"], r["kind"]), (False, "closed"), r)
        self.assertEqual(r["message"], "etcd: lease %d has ended" % lease)
        # Revoking a lease that ended already is no error; revoking a live one ends its keys.
        d.ok("revoke", lease=lease)
        lease = d.ok("grant", ttl=60)["lease"]
        d.ok("put", key="lease/revoked", value=b64("x"), lease=lease)
        d.ok("revoke", lease=lease)
        self.assertIsNone(d.value("lease/revoked"))

    def test_etcd_error_text(self):
        r = self.driver.op("put", key="e", value=b64("x"), lease=12345)
        self.assertEqual(r, {"ok": False, "kind": "http_status", "message":
                             "etcd %s: etcdserver: requested lease not found (HTTP 404, code 5)"
                             % self.etcd.url})

    def test_z_restarted_under_the_same_client(self):
        d = self.driver
        d.ok("put", key="restart/k", value=b64("before"))
        self.etcd.stop()
        r = d.op("get", key="restart/k")
        self.assertEqual((r["ok"], r["kind"]), (False, "unreachable"), r)
        self.assertEqual(r["message"],
                         "etcd unreachable: %s: connection refused" % self.etcd.url)
        self.etcd.start()
        self.assertEqual(d.value("restart/k"), b"before")


@unittest.skipUnless(etcdlib.etcd_binary(), "etcd is not installed (Debian: etcd-server)")
class ThreeMembers(unittest.TestCase):
    def setUp(self):
        self.members = etcdlib.cluster(3)
        for m in self.members:
            self.addCleanup(m.cleanup)
        self.urls = [m.url for m in self.members]
        self.driver = Driver(self.urls)
        self.addCleanup(self.driver.close)

    def every_operation(self, tag):
        d = self.driver
        d.ok("put", key=tag + "/a", value=b64("1"))
        self.assertEqual(d.value(tag + "/a"), b"1")
        rev = d.ok("get", key=tag + "/a")["revision"]
        self.assertTrue(d.ok("replace", key=tag + "/a", revision=rev, value=b64("2"))["done"])
        self.assertTrue(d.ok("create", key=tag + "/b", value=b64("b"))["done"])
        self.assertFalse(d.ok("create", key=tag + "/b", value=b64("b"))["done"])
        self.assertEqual([k["key"] for k in d.ok("list", prefix=tag + "/")["kvs"]],
                         [tag + "/a", tag + "/b"])
        r = d.ok("race_create", key=tag + "/lock", threads=4)
        self.assertEqual((len(r["created"]), r["errors"]), (1, []))
        lease = d.ok("grant", ttl=30)["lease"]
        d.ok("put", key=tag + "/leased", value=b64("l"), lease=lease)
        d.ok("keepalive", lease=lease)
        d.ok("revoke", lease=lease)
        self.assertIsNone(d.value(tag + "/leased"))
        self.assertTrue(d.ok("remove", key=tag + "/a")["done"])

    def test_members_killed_and_back(self):
        self.every_operation("all-up")
        # The first member, where every request starts, then the second: with one member
        # left the cluster has no quorum, so only the first is killed for the operations.
        kill(self.members[0])
        self.every_operation("first-down")
        # Every member down: one error naming each, the client kept.
        for m in self.members[1:]:
            kill(m)
        r = self.driver.op("get", key="first-down/b")
        self.assertEqual((r["ok"], r["kind"]), (False, "unreachable"), r)
        # Each member once, from the one that answered last: the second, or the third when a
        # request to the second outlived the timeout while the cluster elected a new leader.
        self.assertTrue(r["message"].startswith("etcd unreachable: "), r)
        parts = r["message"][len("etcd unreachable: "):].split("; ")
        self.assertEqual(sorted(parts), sorted("%s: connection refused" % u for u in self.urls))
        self.assertNotEqual(parts[0], "%s: connection refused" % self.urls[0])
        # All back, from their data: the same client reads what it wrote.
        for m in self.members:
            m.start(wait=False)
        for m in self.members:
            harness.wait_until(m.healthy, timeout=30, what="etcd member %s" % m.name)
        harness.wait_until(lambda: self.driver.op("get", key="first-down/b")["ok"], timeout=30,
                           what="the client to reach the cluster again")
        self.assertEqual(self.driver.value("first-down/b"), b"b")
        self.every_operation("back")


if __name__ == "__main__":
    harness.main()
