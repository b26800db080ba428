"""The etcd backend over TLS (issue 17): an etcd that serves https only and requires client
certificates of its CA, reached with etcd_ca, etcd_cert and etcd_key through our mbedTLS client;
without the client certificate the CLI says it cannot reach the store."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pairing"))
import etcdlib  # noqa: E402
import harness  # noqa: E402
import pairlib  # noqa: E402


@unittest.skipUnless(etcdlib.etcd_binary(), "etcd is not installed (Debian: etcd-server)")
class EtcdOverTls(harness.TestCase):
    def test_https_with_client_certificates(self):
        pki = os.path.join(self.root.dir, "etcd-pki")
        harness.openssl_ca(pki, "ca", "etcd test CA")
        harness.openssl_leaf(pki, "server", "127.0.0.1", "1001")
        harness.openssl_leaf(pki, "client", "ctrl-exec", "1002")
        path = lambda n: os.path.join(pki, n)  # noqa: E731
        etcd = etcdlib.Etcd(tls={"ca": path("ca.crt"), "cert": path("server.crt"),
                                 "key": path("server.key")})
        self.addCleanup(etcd.cleanup)
        self.assertTrue(etcd.url.startswith("https://"))
        state = ("state_backend = etcd\netcd_endpoints = %s\netcd_ca = %s\netcd_cert = %s\n"
                 "etcd_key = %s\n" % (etcd.url, path("ca.crt"), path("client.crt"),
                                      path("client.key")))
        pairlib.write_dispatcher_conf(self.root, state)
        self.root.write("/dump.json", '{"ctrl_exec_state":1,"agents":{"web1":{"hostname":"web1",'
                                      '"ip":"10.0.0.1"}},"pairing":{},"runs":{},"rotation":null}')
        r = self.root.run(["ced", "state", "import", self.root.path("/dump.json"), "--apply"])
        self.assertEqual(r.rc, 0, r)
        r = self.root.run(["ced", "list-agents"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("web1", r.out)
        # https without the client certificate is a config error naming the keys.
        pairlib.write_dispatcher_conf(self.root, "state_backend = etcd\netcd_endpoints = %s\n"
                                      % etcd.url)
        r = self.root.run(["ced", "list-agents"])
        self.assertEqual(r.rc, 255, r)
        self.assertIn("etcd_ca, etcd_cert and etcd_key", r.err)
        # A client certificate of another CA: etcd refuses the handshake.
        harness.openssl_ca(pki, "other", "another CA")
        harness.openssl_leaf(pki, "stranger", "x", "1003", ca="other")
        pairlib.write_dispatcher_conf(self.root, state.replace("client.", "stranger."))
        r = self.root.run(["ced", "list-agents"])
        self.assertEqual(r.rc, 255, r)
        self.assertIn("Cannot reach the state store: etcd unreachable: %s" % etcd.url, r.err)


if __name__ == "__main__":
    harness.main()
