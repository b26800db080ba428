"""A real etcd (Debian's etcd-server) on loopback for the tests: free ports, a temp data dir,
started and stopped by PID."""
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request

import harness


def etcd_binary():
    return shutil.which("etcd")


class Etcd:
    """One member; `cluster` (name -> peer port) makes it one of several."""

    def __init__(self, name="e1", cluster=None, peer_port=None, wait=True, tls=None):
        # tls: {"ca", "cert", "key"} paths: clients over https, with certificates of that CA.
        self.tls = tls
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="cx-etcd-")
        self.client_port = harness.free_port()
        self.peer_port = peer_port or harness.free_port()
        self.cluster = cluster or {name: self.peer_port}
        self.proc = None
        self.log = None
        self.start(wait)

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.client_port)

    def start(self, wait=True):
        peer = "http://127.0.0.1:%d" % self.peer_port
        self.log = open(os.path.join(self.dir, "etcd.log"), "ab")
        initial = ",".join("%s=http://127.0.0.1:%d" % (n, p) for n, p in self.cluster.items())
        self.proc = subprocess.Popen(
            [etcd_binary(), "--name", self.name, "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", initial, "--initial-cluster-token", "cx-test"]
            + (["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"] if self.tls else []),
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        if wait:
            harness.wait_until(self.healthy, timeout=30, what="etcd to serve")

    def healthy(self):
        if self.tls:
            r = subprocess.run(["curl", "-s", "--cacert", self.tls["ca"], "--cert",
                                self.tls["cert"], "--key", self.tls["key"], self.url + "/health"],
                               capture_output=True, timeout=5)
            return b"true" in r.stdout
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return b"true" in r.read()
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def keys(self, prefix):
        r = subprocess.run(["etcdctl", "--endpoints", self.url, "get", "--prefix", prefix,
                            "--keys-only"], capture_output=True, text=True, timeout=10)
        return [k for k in r.stdout.splitlines() if k]

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster(n=3):
    """`n` members on loopback, started together; returns them once all are healthy."""
    peers = {"m%d" % (i + 1): harness.free_port() for i in range(n)}
    members = [Etcd(name, cluster=peers, peer_port=port, wait=False)
               for name, port in peers.items()]
    for m in members:
        harness.wait_until(m.healthy, timeout=30, what="etcd member %s" % m.name)
    return members
