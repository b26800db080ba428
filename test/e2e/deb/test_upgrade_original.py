"""An in-place upgrade from the original's packages: a stand-in for the original's
ctrl-exec-common and ctrl-exec-agent 0.12.3 (their file list, relations and postinst's effects,
with a dummy program in place of the Perl one) is installed in a throw-away Debian root and paired
with a dispatcher, as an operator would; then our ctrl-exec-common and ctrl-exec-agent are
installed over it with dpkg -i. The agent must come up from the same config, key, certificates
and trusted-dispatcher map, and the dispatcher must still run a script on it."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "pairing"))
import deblib  # noqa: E402
import harness  # noqa: E402
import pairlib  # noqa: E402

SKIP = deblib.missing_prerequisites()
AGENT_HOST = "agent1.deb.test"
ORIGINAL = "0.12.3"
IDENTITY = ("/etc/ctrl-exec-agent/agent.key", "/etc/ctrl-exec-agent/agent.crt",
            "/etc/ctrl-exec-agent/ca.crt", "/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers",
            "/opt/ctrl-exec-scripts/hello.sh")

# The original's agent.conf as its package seeds it: the keys and the profile its 0.12.3
# example sets (spec A§2.2; docs/COMPATIBILITY.md, "Example agent.conf").
ORIGINAL_AGENT_CONF = """# stand-in for the original's agent.conf.example (0.12.3): its active settings
port = 7443
cert = /etc/ctrl-exec-agent/agent.crt
key  = /etc/ctrl-exec-agent/agent.key
ca   = /etc/ctrl-exec-agent/ca.crt
executor_socket = /run/ctrl-exec-agent/exec.sock

[profile default]
run_as = nobody
"""
ORIGINAL_SCRIPTS_CONF = "# stand-in for the original's scripts.conf.example\n"
STUB = "#!/bin/sh\necho 'stand-in for the original Perl %s 0.12.3' >&2\nexit 1\n"
# What the original's ctrl-exec-agent postinst leaves (spec: agent-and-wire.md, A§2.1), and
# dh_installsystemd --no-enable's record of the units, in a script of this test's own.
ORIGINAL_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group ctrl-exec-agent >/dev/null || addgroup --system --quiet ctrl-exec-agent
    getent passwd ctrl-exec-agent >/dev/null || adduser --system --quiet --no-create-home \\
        --home /nonexistent --ingroup ctrl-exec-agent --shell /usr/sbin/nologin ctrl-exec-agent
    install -d -m 0750 -o root -g ctrl-exec-agent /etc/ctrl-exec-agent
    for f in agent.conf scripts.conf; do
        [ -f /etc/ctrl-exec-agent/$f ] || install -m 0640 -o root -g ctrl-exec-agent \\
            /usr/share/ctrl-exec/examples/$f.example /etc/ctrl-exec-agent/$f
    done
    install -d -m 0750 -o ctrl-exec-agent -g ctrl-exec-agent /var/lib/ctrl-exec-agent
    install -d -m 0750 -o root -g ctrl-exec-agent /opt/ctrl-exec-scripts
    install -m 0750 -o root -g ctrl-exec-agent \\
        /usr/share/ctrl-exec/examples/ctrl-exec-demonstrator.sh /opt/ctrl-exec-scripts/
    deb-systemd-helper update-state ctrl-exec-agent.service >/dev/null || true
    deb-systemd-helper update-state ctrl-exec-exec.service >/dev/null || true
fi
exit 0
"""
ORIGINAL_AGENT_UNIT = """[Unit]
Description=stand-in for the original's agent unit
[Service]
User=ctrl-exec-agent
Group=ctrl-exec-agent
ExecStart=/usr/bin/ctrl-exec-agent serve
[Install]
WantedBy=multi-user.target
"""
ORIGINAL_EXEC_UNIT = """[Unit]
Description=stand-in for the original's executor unit
[Service]
ExecStart=/usr/sbin/ctrl-exec-exec serve /run/ctrl-exec-agent/exec.sock
[Install]
WantedBy=multi-user.target
"""


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build_deb(work, name, arch, depends, files, postinst=None):
    """A package in the original's shape: `files` maps a path to (content, mode) or to a
    symlink target given as ("->", target)."""
    top = os.path.join(work, name)
    os.makedirs(os.path.join(top, "DEBIAN"))
    for path, spec in files.items():
        dest = os.path.join(top, path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if spec[0] == "->":
            os.symlink(spec[1], dest)
        else:
            with open(dest, "w") as f:
                f.write(spec[0])
            os.chmod(dest, spec[1])
    control = ("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: test <test@example.org>\n"
               "Section: admin\nPriority: optional\n%sDescription: stand-in for the original's %s\n"
               " Built by the test from the original's file list.\n"
               % (name, ORIGINAL, arch, "Depends: %s\n" % depends if depends else "", name))
    with open(os.path.join(top, "DEBIAN", "control"), "w") as f:
        f.write(control)
    if postinst:
        with open(os.path.join(top, "DEBIAN", "postinst"), "w") as f:
            f.write(postinst)
        os.chmod(os.path.join(top, "DEBIAN", "postinst"), 0o755)
    deb = os.path.join(work, "%s_%s_%s.deb" % (name, ORIGINAL, arch))
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", top, deb], check=True,
                   capture_output=True)
    return deb


@unittest.skipIf(SKIP, SKIP or "")
class UpgradeFromOriginalTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.work = tempfile.mkdtemp(prefix="cx-deb-out-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.deb_root = deblib.DebRoot()
        self.addCleanup(self.deb_root.cleanup)

    def original_packages(self):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
        ex = "/usr/share/ctrl-exec/examples/"
        common = build_deb(self.work, "ctrl-exec-common", "all", None, {
            "/usr/share/perl5/Exec/Agent.pm": ("1;\n", 0o644),
            "/usr/share/perl5/Exec/VERSION": (ORIGINAL + "\n", 0o644)})
        agent = build_deb(self.work, "ctrl-exec-agent", arch,
                          "ctrl-exec-common (= %s), adduser" % ORIGINAL, {
                              "/usr/bin/ctrl-exec-agent": (STUB % "agent", 0o755),
                              "/usr/bin/cea": ("->", "ctrl-exec-agent"),
                              "/usr/sbin/ctrl-exec-exec": (STUB % "executor", 0o755),
                              "/lib/systemd/system/ctrl-exec-agent.service":
                                  (ORIGINAL_AGENT_UNIT, 0o644),
                              "/lib/systemd/system/ctrl-exec-exec.service":
                                  (ORIGINAL_EXEC_UNIT, 0o644),
                              ex + "agent.conf.example": (ORIGINAL_AGENT_CONF, 0o644),
                              ex + "scripts.conf.example": (ORIGINAL_SCRIPTS_CONF, 0o644),
                              ex + "ctrl-exec-demonstrator.sh": (STUB % "demonstrator", 0o755),
                              ex + "update-ctrl-exec-serial": (STUB % "serial updater", 0o755)},
                          ORIGINAL_POSTINST)
        return common, agent

    def install(self, *debs):
        for d in debs:
            shutil.copy(d, self.deb_root.path("/tmp/"))
        r = self.deb_root.dpkg("-i", *["/tmp/" + os.path.basename(d) for d in debs])
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("Configuration file", r.out + r.err)  # no conffile prompt
        return r

    def pair_original_agent(self, port):
        """The operator's steps on the original: the port, a script, pairing, enabling the
        unit. Pairing runs our binary in the root (it writes what the original's pairing writes,
        in the same places); it is removed afterwards."""
        root = self.deb_root
        # The original's /opt/ctrl-exec-scripts is 0750 root:ctrl-exec-agent, which nobody
        # (the default profile) cannot enter: the script gets a profile that runs it as the
        # agent's user.
        conf = root.read("/etc/ctrl-exec-agent/agent.conf").replace("port = 7443",
                                                                    "port = %d" % port)
        conf += "\n[profile scripts]\nrun_as = ctrl-exec-agent\n"
        root.write("/etc/ctrl-exec-agent/agent.conf", conf, 0o640, ("root", "ctrl-exec-agent"))
        root.write("/etc/ctrl-exec-agent/scripts.conf", root.read(
            "/etc/ctrl-exec-agent/scripts.conf")
            + "hello = /opt/ctrl-exec-scripts/hello.sh profile=scripts\n",
            0o640, ("root", "ctrl-exec-agent"))
        root.write("/opt/ctrl-exec-scripts/hello.sh", '#!/bin/sh\necho "hello from $(id -un)"\n',
                   0o750, ("root", "ctrl-exec-agent"))
        os.makedirs(root.path("/tmp/cx"))
        shutil.copy(harness.BINARY, root.path("/tmp/cx/ctrl-exec"))
        os.symlink("ctrl-exec", root.path("/tmp/cx/ctrl-exec-agent"))
        pairlib.setup_dispatcher(self.root)
        pairing_port = harness.free_port()
        pm = pairlib.spawn_pairing_mode(self.root, pairing_port, timeout=120)
        r = root.run(["/tmp/cx/ctrl-exec-agent", "request-pairing", "--dispatcher", "127.0.0.1",
                      "--port", str(pairing_port), "--lookup-by", "ip", "--background",
                      "--timeout", "60"], preexec_fn=deblib.in_uts(AGENT_HOST))
        self.assertEqual(r.rc, 0, r)
        r = self.root.run(["ced", "approve", r.out.strip()])
        self.assertEqual(r.rc, 0, r)
        harness.wait_until(lambda: all(os.path.exists(root.path(p)) for p in IDENTITY),
                           timeout=30, what="the agent's certificate and map")
        pm.stop()
        shutil.rmtree(root.path("/tmp/cx"))
        # `systemctl enable ctrl-exec-agent` (no systemd runs here): the link it makes.
        wants = root.path("/etc/systemd/system/multi-user.target.wants")
        os.makedirs(wants, exist_ok=True)
        os.symlink("/lib/systemd/system/ctrl-exec-agent.service",
                   os.path.join(wants, "ctrl-exec-agent.service"))

    def test_agent_keeps_identity_and_serves(self):
        root = self.deb_root
        ours = deblib.build_packages(self.work)
        version = deblib.deb_field(ours["ctrl-exec-common"], "Version")
        self.install(*self.original_packages())
        self.assertEqual(root.status("ctrl-exec-agent"), ("ii", ORIGINAL))
        self.assertEqual(root.conffiles("ctrl-exec-agent"), set())  # seeded, not conffiles
        port = harness.free_port()
        self.pair_original_agent(port)
        identity = {p: digest(root.path(p)) for p in IDENTITY}
        agent_conf = root.read("/etc/ctrl-exec-agent/agent.conf")
        scripts_conf = root.read("/etc/ctrl-exec-agent/scripts.conf")
        scripts_mode = root.mode_owner("/opt/ctrl-exec-scripts")
        self.assertEqual(scripts_mode, ("0750", "root", "ctrl-exec-agent"))
        uid = root.passwd("ctrl-exec-agent")[2]

        # --- our packages over the original's
        self.install(ours["ctrl-exec-common"], ours["ctrl-exec-agent"])
        for name in ("ctrl-exec-common", "ctrl-exec-agent"):
            self.assertEqual(root.status(name), ("ii", version), name)
        self.assertFalse(os.path.exists(root.path("/usr/share/perl5/Exec")))
        self.assertFalse(os.path.exists(root.path("/usr/share/ctrl-exec/examples")))
        self.assertEqual(os.readlink(root.path("/usr/bin/ctrl-exec-agent")), "ctrl-exec")
        self.assertEqual(os.readlink(root.path("/usr/bin/cea")), "ctrl-exec")
        # The operator's configs are kept and are now conffiles; ours is beside them.
        self.assertEqual(root.read("/etc/ctrl-exec-agent/agent.conf"), agent_conf)
        self.assertEqual(root.read("/etc/ctrl-exec-agent/scripts.conf"), scripts_conf)
        with open(os.path.join(harness.SOURCE_ROOT, "conf", "agent.conf")) as f:
            self.assertEqual(root.read("/etc/ctrl-exec-agent/agent.conf.dpkg-dist"), f.read())
        self.assertFalse(any(n.endswith(".cx-takeover")
                             for n in os.listdir(root.path("/etc/ctrl-exec-agent"))))
        self.assertEqual(root.conffiles("ctrl-exec-agent"),
                         {"/etc/ctrl-exec-agent/agent.conf", "/etc/ctrl-exec-agent/scripts.conf"})
        self.assertEqual({p: digest(root.path(p)) for p in IDENTITY}, identity)
        self.assertEqual(root.passwd("ctrl-exec-agent")[2], uid)
        self.assertEqual(root.mode_owner("/opt/ctrl-exec-scripts"), scripts_mode)
        self.assertEqual(root.mode_owner("/etc/ctrl-exec-agent/agent.key")[2], "ctrl-exec-agent")
        self.assertEqual(os.readlink(root.path(
            "/etc/systemd/system/multi-user.target.wants/ctrl-exec-agent.service")),
            "/lib/systemd/system/ctrl-exec-agent.service")

        # --- the executor and the agent from our units (the agent as its user): same identity,
        # and the dispatcher runs a script on it
        os.makedirs(root.path("/run/ctrl-exec-agent"), mode=0o755, exist_ok=True)
        cmd, _ = root.unit_exec("ctrl-exec-exec.service")
        executor = root.spawn(cmd)
        harness.wait_until(lambda: os.path.exists(root.path("/run/ctrl-exec-agent/exec.sock"))
                           or not executor.alive(), what="the executor's socket")
        self.assertTrue(executor.alive(), executor.err())
        cmd, user = root.unit_exec("ctrl-exec-agent.service")
        agent = root.spawn(cmd, user=(user, user), preexec_fn=deblib.in_uts(AGENT_HOST))
        harness.wait_until(lambda: harness.port_open(port) or not agent.alive(),
                           what="the agent to listen")
        self.assertTrue(agent.alive(), agent.err())
        served = subprocess.run(
            "openssl s_client -connect 127.0.0.1:%d -cert %s -key %s </dev/null 2>/dev/null"
            " | openssl x509 -noout -fingerprint -sha256" % (
                port, self.root.path("/etc/ctrl-exec/dispatcher.crt"),
                self.root.path("/etc/ctrl-exec/dispatcher.key")),
            shell=True, capture_output=True, text=True, timeout=30).stdout
        on_disk = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                                  root.path("/etc/ctrl-exec-agent/agent.crt")],
                                 capture_output=True, text=True, check=True).stdout
        self.assertEqual(served, on_disk)
        r = self.root.run(["ced", "ping", AGENT_HOST])
        self.assertEqual(r.rc, 0, r)
        r = self.root.run(["ced", "run", AGENT_HOST, "hello"])
        self.assertEqual(r.rc, 0, r)
        # Through the executor, under the operator's profile.
        self.assertIn("hello from ctrl-exec-agent", r.out)


if __name__ == "__main__":
    harness.main()
