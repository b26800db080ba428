"""The packages' whole life in a throw-away Debian root: install with dpkg, the accounts,
modes, links and enabled units the maintainer scripts leave; pairing and a run through the
installed binaries, each service started from its installed unit's ExecStart= as its User=;
an upgrade to a rebuilt, higher version that keeps the edited configs and all state; remove,
which keeps configs and state; purge, which deletes them and leaves the operator's scripts."""
import hashlib
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deblib  # noqa: E402
import harness  # noqa: E402

SKIP = deblib.missing_prerequisites()
AGENT_HOST = "agent1.deb.test"
PACKAGES = ("ctrl-exec-common", "ctrl-exec-agent", "ctrl-exec-dispatcher")
STATE = ("/etc/ctrl-exec-agent/agent.key", "/etc/ctrl-exec-agent/agent.crt",
         "/etc/ctrl-exec-agent/ca.crt", "/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers",
         "/etc/ctrl-exec/ca.key", "/etc/ctrl-exec/ca.crt", "/etc/ctrl-exec/dispatcher.key",
         "/etc/ctrl-exec/dispatcher.crt", "/var/lib/ctrl-exec/agents/%s.json" % AGENT_HOST)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@unittest.skipIf(SKIP, SKIP or "")
class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="cx-deb-out-")
        self.addCleanup(shutil.rmtree, self.out, True)
        self.root = deblib.DebRoot()
        self.addCleanup(self.root.cleanup)
        self.services = []

    def install(self, debs):
        names = []
        for name in PACKAGES:
            shutil.copy(debs[name], self.root.path("/tmp/"))
            names.append("/tmp/" + os.path.basename(debs[name]))
        r = self.root.dpkg("-i", *names)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("Configuration file", r.out + r.err)  # no conffile prompt
        return r

    def start_services(self):
        """The executor and the agent, as their units start them (RuntimeDirectory= made)."""
        os.makedirs(self.root.path("/run/ctrl-exec-agent"), mode=0o755, exist_ok=True)
        cmd, user = self.root.unit_exec("ctrl-exec-exec.service")
        self.assertIsNone(user)
        executor = self.root.spawn(cmd)
        harness.wait_until(lambda: os.path.exists(self.root.path("/run/ctrl-exec-agent/exec.sock"))
                           or not executor.alive(), what="the executor's socket")
        self.assertTrue(executor.alive(), executor.err())
        cmd, user = self.root.unit_exec("ctrl-exec-agent.service")
        self.assertEqual(user, "ctrl-exec-agent")
        agent = self.root.spawn(cmd, user=(user, user), preexec_fn=deblib.in_uts(AGENT_HOST))
        harness.wait_until(lambda: harness.port_open(self.port) or not agent.alive(),
                           what="the agent to listen")
        self.assertTrue(agent.alive(), agent.err())
        self.services = [agent, executor]

    def stop_services(self):
        for p in self.services:
            p.stop()
        self.services = []

    def ced(self, *args):
        return self.root.run(["ced"] + list(args))

    def run_hello(self):
        r = self.ced("run", AGENT_HOST, "hello")
        self.assertEqual(r.rc, 0, r)
        # The shipped default profile runs the script as nobody, through the executor.
        self.assertIn("hello from nobody", r.out)

    def test_install_pair_run_upgrade_remove_purge(self):
        debs = deblib.build_packages(self.out)
        version = deblib.deb_field(debs["ctrl-exec-common"], "Version")
        newer = version + ".1"
        debs2 = deblib.build_packages(os.path.join(self.out, "2"), newer)
        self.assertTrue(deblib.compare_versions(newer, "gt", version))
        root = self.root

        # --- install
        self.install(debs)
        for name in PACKAGES:
            self.assertEqual(root.status(name), ("ii", version), name)
        for user, group in (("ctrl-exec-agent", "ctrl-exec-agent"), ("ctrl-exec", "ctrl-exec")):
            entry = root.passwd(user)
            self.assertIsNotNone(entry, user)
            self.assertLess(int(entry[2]), 1000, "%s is a system user" % user)
            self.assertEqual(entry[3], root.group(group)[2])
            self.assertEqual(entry[5:], ["/nonexistent", "/usr/sbin/nologin"])
        expected_modes = {
            "/etc/ctrl-exec-agent": ("0750", "root", "ctrl-exec-agent"),
            "/etc/ctrl-exec-agent/agent.conf": ("0640", "root", "ctrl-exec-agent"),
            "/etc/ctrl-exec-agent/scripts.conf": ("0640", "root", "ctrl-exec-agent"),
            "/var/lib/ctrl-exec-agent": ("0750", "ctrl-exec-agent", "ctrl-exec-agent"),
            "/opt/ctrl-exec-scripts": ("0755", "root", "ctrl-exec-agent"),
            "/etc/ctrl-exec": ("0750", "root", "ctrl-exec"),
            "/etc/ctrl-exec/ctrl-exec.conf": ("0640", "root", "ctrl-exec"),
            "/etc/ctrl-exec/auth-hook": ("0755", "root", "root"),
        }
        for d in ("pairing", "agents", "locks", "runs"):
            expected_modes["/var/lib/ctrl-exec/" + d] = ("2770", "root", "ctrl-exec")
        for path, want in expected_modes.items():
            self.assertEqual(root.mode_owner(path), want, path)
        self.assertEqual(root.conffiles("ctrl-exec-agent"),
                         {"/etc/ctrl-exec-agent/agent.conf", "/etc/ctrl-exec-agent/scripts.conf"})
        self.assertEqual(root.conffiles("ctrl-exec-dispatcher"),
                         {"/etc/ctrl-exec/ctrl-exec.conf", "/etc/ctrl-exec/auth-hook"})
        for applet, canonical in (("ced", "ctrl-exec-dispatcher"), ("cea", "ctrl-exec-agent"),
                                  ("ctrl-exec-api", "ctrl-exec-api"),
                                  ("ctrl-exec-pairing", "ctrl-exec-pairing"),
                                  ("ctrl-exec-exec", "ctrl-exec-exec")):
            r = root.run([applet, "--version"])
            self.assertEqual((r.rc, r.out.split()[:1]), (0, [canonical]), (applet, r))
        wants = "/etc/systemd/system/%s.wants/%s"
        for target, unit in (("multi-user.target", "ctrl-exec-agent.service"),
                             ("timers.target", "ctrl-exec-agent-renew.timer"),
                             ("timers.target", "ctrl-exec-maintenance.timer")):
            link = root.path(wants % (target, unit))
            self.assertEqual(os.readlink(link), "/lib/systemd/system/" + unit, unit)
        for unit in ("ctrl-exec-api.service", "ctrl-exec-exec.service"):
            self.assertFalse(os.path.lexists(root.path(wants % ("multi-user.target", unit))), unit)
        units = os.listdir(root.path("/lib/systemd/system"))
        for unit in units:
            text = root.read("/lib/systemd/system/" + unit)
            self.assertNotIn("/usr/local", text, unit)
            for key in ("ExecStart", "ExecStartPre", "ExecCondition"):
                cmd, _ = root.unit_exec(unit, key)
                if cmd and cmd[0].startswith("/"):
                    self.assertTrue(os.path.exists(root.path(cmd[0])), "%s: %s" % (unit, cmd[0]))

        # --- configure (the conffiles are edited, as an operator does) and pair
        self.port = harness.free_port()
        conf = root.read("/etc/ctrl-exec-agent/agent.conf")
        self.assertIn("\nport = 7443\n", conf)
        root.write("/etc/ctrl-exec-agent/agent.conf",
                   conf.replace("\nport = 7443\n", "\nport = %d\n" % self.port), 0o640,
                   ("root", "ctrl-exec-agent"))
        root.write("/etc/ctrl-exec-agent/scripts.conf", root.read(
            "/etc/ctrl-exec-agent/scripts.conf") + "hello = /opt/ctrl-exec-scripts/hello.sh\n",
            0o640, ("root", "ctrl-exec-agent"))
        root.write("/opt/ctrl-exec-scripts/hello.sh", '#!/bin/sh\necho "hello from $(id -un)"\n',
                   0o755)
        root.write("/etc/ctrl-exec/ctrl-exec.conf", root.read("/etc/ctrl-exec/ctrl-exec.conf")
                   + "dispatcher_id = deb-test\n", 0o640, ("root", "ctrl-exec"))
        for mode in ("setup-ca", "setup-ctrl-exec"):
            r = self.ced(mode)
            self.assertEqual(r.rc, 0, (mode, r))
        # The API's user owns the dispatcher key (setup-ctrl-exec gives it to service_user).
        self.assertEqual(root.mode_owner("/etc/ctrl-exec/dispatcher.key")[1], "ctrl-exec")
        pairing_port = harness.free_port()
        pm = root.spawn(["ced", "pairing-mode", "--port", str(pairing_port), "--timeout", "120"])
        pm.wait_for_log("ACTION=pairing-mode-start")
        r = root.run(["ctrl-exec-agent", "request-pairing", "--dispatcher", "127.0.0.1", "--port",
                      str(pairing_port), "--lookup-by", "ip", "--background", "--timeout", "60"],
                     preexec_fn=deblib.in_uts(AGENT_HOST))
        self.assertEqual(r.rc, 0, r)
        r = self.ced("approve", r.out.strip())
        self.assertEqual(r.rc, 0, r)
        harness.wait_until(lambda: os.path.exists(root.path("/etc/ctrl-exec-agent/agent.crt"))
                           and os.path.exists(root.path(STATE[3])), timeout=30,
                           what="the agent to store its certificate and the map")
        pm.stop()
        self.start_services()
        r = self.ced("ping", AGENT_HOST)
        self.assertEqual(r.rc, 0, r)
        self.run_hello()
        self.stop_services()

        # --- upgrade to a higher version: configs as edited, state as it was
        before = {p: digest(root.path(p)) for p in STATE}
        edited = {p: root.read(p) for p in ("/etc/ctrl-exec-agent/agent.conf",
                                            "/etc/ctrl-exec-agent/scripts.conf",
                                            "/etc/ctrl-exec/ctrl-exec.conf")}
        self.install(debs2)
        for name in PACKAGES:
            self.assertEqual(root.status(name), ("ii", newer), name)
        for path, text in edited.items():
            self.assertEqual(root.read(path), text, path)
            self.assertFalse(os.path.exists(root.path(path + ".dpkg-dist")), path)
        self.assertEqual({p: digest(root.path(p)) for p in STATE}, before)
        for path, want in expected_modes.items():
            self.assertEqual(root.mode_owner(path), want, path)
        self.start_services()
        self.run_hello()
        self.stop_services()

        # --- remove: the programs go, configs and state stay, the units are masked
        r = root.dpkg("-r", *reversed(PACKAGES))
        self.assertEqual(r.rc, 0, r)
        for name in PACKAGES:
            self.assertEqual(root.status(name)[0], "rc" if name != "ctrl-exec-common" else "un",
                             name)
        self.assertFalse(os.path.lexists(root.path("/usr/bin/ctrl-exec")))
        self.assertFalse(os.path.lexists(root.path("/usr/bin/ced")))
        for p in STATE + tuple(edited):
            self.assertTrue(os.path.exists(root.path(p)), p)
        self.assertEqual(os.readlink(root.path("/etc/systemd/system/ctrl-exec-agent.service")),
                         "/dev/null")

        # --- purge: configs, identity, state and the units' links go; accounts and scripts stay
        r = root.dpkg("-P", "ctrl-exec-agent", "ctrl-exec-dispatcher")
        self.assertEqual(r.rc, 0, r)
        for name in PACKAGES:
            self.assertEqual(root.status(name)[0] or "un", "un", name)
        for p in ("/etc/ctrl-exec-agent", "/var/lib/ctrl-exec-agent", "/etc/ctrl-exec",
                  "/var/lib/ctrl-exec"):
            self.assertFalse(os.path.lexists(root.path(p)), p)
        for dirpath, dirs, files in os.walk(root.path("/etc/systemd/system")):
            for f in dirs + files:
                self.assertNotIn("ctrl-exec", f, os.path.join(dirpath, f))
        self.assertTrue(os.path.exists(root.path("/opt/ctrl-exec-scripts/hello.sh")))
        self.assertIsNotNone(root.passwd("ctrl-exec-agent"))
        self.assertIsNotNone(root.passwd("ctrl-exec"))


if __name__ == "__main__":
    harness.main()
