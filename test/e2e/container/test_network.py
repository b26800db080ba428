"""The shared network of the container tests on its own: two network namespaces joined by a
veth pair, name resolution through /etc/hosts, PID 1 in its own PID namespace, and clean-up."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rootfs  # noqa: E402
import harness  # noqa: E402


class NetworkPlumbing(harness.TestCase):
    """The shared network and name resolution on their own, with busybox only."""

    def setUp(self):
        super().setUp()
        why = rootfs.missing_prerequisites()
        if why:
            self.skipTest(why)

    def test_containers_reach_each_other_by_service_name(self):
        net = rootfs.Network(["dispatcher", "agent"])
        self.addCleanup(net.cleanup)
        image = {n: rootfs.build_image("Dockerfile.agent", workdir=os.path.join(self.root.dir, n))
                 for n in ("dispatcher", "agent")}
        c = {n: rootfs.Container(image[n], n, self.root.dir, netns=net.netns[n], hosts=net.hosts())
             for n in ("dispatcher", "agent")}
        for n in c:
            self.addCleanup(c[n].cleanup)
        # An echo server on the dispatcher; the agent reaches it by service name.
        server = c["dispatcher"].start(entrypoint=["nc", "-ll", "-p", "7444", "-e", "/bin/cat"],
                                       cmd=[])
        rootfs.wait_port(net.netns["dispatcher"], 7444, host=net.ip["dispatcher"])
        r = c["agent"].exec(["sh", "-c", "hostname; echo hello-from-$(hostname) | nc dispatcher 7444"])
        self.assertEqual((r.rc, r.out), (0, "agent\nhello-from-agent\n"), r)
        self.assertTrue(server.alive())
        self.assertEqual(c["dispatcher"].stop(timeout=2)[0] is not None, True)
        # The first process is PID 1 of its own PID namespace, with its own /proc.
        probe = c["agent"].start(entrypoint=["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
                                 cmd=[])
        self.assertEqual(probe.wait(10), 0)
        self.assertEqual(probe.out().split()[0], "1")
        names = list(net.netns.values())
        net.cleanup()
        listed = subprocess.run([rootfs.tool("ip"), "netns", "list"], capture_output=True,
                                text=True).stdout
        for ns in names:
            self.assertNotIn(ns, listed)


if __name__ == "__main__":
    harness.main()
