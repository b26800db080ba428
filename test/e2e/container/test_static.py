"""Static checks of container/ and conf/: ShellCheck, compose validation, Dockerfile shape,
systemd unit verification, and every path against the defaults the binary uses."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rootfs  # noqa: E402
import harness  # noqa: E402

SRC = harness.SOURCE_ROOT
CONTAINER = os.path.join(SRC, "container")
CONF = os.path.join(SRC, "conf")
COMPOSE_FILES = ["compose.yml", "compose.dispatcher.yml", "compose.agent.yml",
                 "compose.multi-agent.yml"]
SHELL_FILES = ["container/dispatcher-entrypoint.sh", "container/agent-entrypoint.sh",
               "conf/auth-hook", "conf/openrc/ctrl-exec-agent", "conf/openrc/ctrl-exec-api",
               "conf/openrc/ctrl-exec-exec",
               "test/e2e/container/fixtures/apk", "test/e2e/container/fixtures/addgroup",
               "test/e2e/container/fixtures/adduser"]
UNITS = ["ctrl-exec-agent.service", "ctrl-exec-api.service", "ctrl-exec-maintenance.service",
         "ctrl-exec-maintenance.timer", "ctrl-exec-agent-renew.service",
         "ctrl-exec-agent-renew.timer", "ctrl-exec-exec.service"]
OPENRC = ["ctrl-exec-agent", "ctrl-exec-api", "ctrl-exec-exec"]
# The executor's command line (spec A4.8), the same in both service managers.
EXEC_SOCKET = "/run/ctrl-exec-agent/exec.sock"
EXEC_ARGS = ("serve %s /etc/ctrl-exec-agent/agent.conf /etc/ctrl-exec-agent/scripts.conf "
             "ctrl-exec-agent" % EXEC_SOCKET)
AGENT_SERVICES = {"compose.yml": ["agent"], "compose.agent.yml": ["agent"],
                  "compose.multi-agent.yml": ["agent-db", "agent-web"]}


def read(*parts):
    with open(os.path.join(SRC, *parts)) as f:
        return f.read()


def load_yaml(text):
    try:
        import yaml
    except ImportError:
        return None
    return yaml.safe_load(text)


def volume_pair(v):
    """(source, target) of a service volume, in the short or the long syntax."""
    if isinstance(v, dict):
        return v["source"], v["target"]
    source, target = v.split(":")[:2]
    return source, target


class ShellCheck(harness.TestCase):
    def test_shell_files_are_shellcheck_clean(self):
        if not shutil.which("shellcheck"):
            self.skipTest("shellcheck is not installed (.ci/install-deps installs it)")
        for rel in SHELL_FILES:
            with self.subTest(rel):
                # The entrypoints run under busybox sh: check them as POSIX sh.
                p = subprocess.run(["shellcheck", "--shell=sh", os.path.join(SRC, rel)],
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_openrc_scripts_parse_and_are_executable(self):
        for name in OPENRC:
            with self.subTest(name):
                path = os.path.join(CONF, "openrc", name)
                p = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
                self.assertEqual((p.returncode, p.stderr), (0, ""))
                self.assertTrue(os.access(path, os.X_OK), path)

    def test_entrypoints_are_posix_sh_and_executable(self):
        for n in ("dispatcher", "agent"):
            path = os.path.join(CONTAINER, "%s-entrypoint.sh" % n)
            with open(path) as f:
                self.assertEqual(f.readline(), "#!/bin/sh\n")
            self.assertTrue(os.access(path, os.X_OK), path)


class Compose(harness.TestCase):
    def compose(self, name, *args, env=None):
        e = dict(os.environ)
        e.pop("DISPATCHER_HOST", None)
        e.update(env or {})
        return subprocess.run(["docker-compose", "-f", os.path.join(CONTAINER, name)] + list(args),
                              capture_output=True, text=True, env=e, cwd=CONTAINER)

    def setUp(self):
        super().setUp()
        if not shutil.which("docker-compose"):
            self.skipTest("docker-compose is not installed (.ci/install-deps installs it)")

    def test_every_compose_file_validates(self):
        for name in COMPOSE_FILES:
            with self.subTest(name):
                p = self.compose(name, "config", "-q", env={"DISPATCHER_HOST": "d.example.com"})
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr.strip(), "")

    def test_agent_only_file_requires_dispatcher_host(self):
        p = self.compose("compose.agent.yml", "config", "-q")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("set DISPATCHER_HOST to the hostname or IP of the dispatcher", p.stderr)

    def config(self, name):
        p = self.compose(name, "config", env={"DISPATCHER_HOST": "d.example.com"})
        self.assertEqual(p.returncode, 0, p.stderr)
        cfg = load_yaml(p.stdout)
        if cfg is None:
            self.skipTest("python3 yaml module missing (Debian: python3-yaml)")
        return cfg

    def test_services_match_the_guide(self):
        dispatcher = {
            "build": "container/Dockerfile.dispatcher", "container_name": "dispatcher",
            "restart": "unless-stopped",
            "volumes": {"dispatcher-data": "/etc/ctrl-exec", "dispatcher-registry": "/var/lib/ctrl-exec"},
        }
        agent_volumes = lambda p: {p + "-data": "/etc/ctrl-exec-agent",  # noqa: E731
                                   p + "-scripts": "/opt/ctrl-exec-scripts",
                                   p + "-state": "/var/lib/ctrl-exec-agent"}
        expected = {
            "compose.yml": {
                "dispatcher": dict(dispatcher, ports=["7445:7445"], networks=["ctrl-exec-net"],
                                   env={"API_BIND": "127.0.0.1", "API_PORT": "7445",
                                        "API_AUTH_DEFAULT": "deny"}),
                "agent": {"build": "container/Dockerfile.agent", "container_name": "agent",
                          "hostname": "agent", "restart": "on-failure", "ports": ["7443:7443"],
                          "volumes": agent_volumes("agent"), "networks": ["ctrl-exec-net"],
                          "env": {"DISPATCHER_HOST": "dispatcher"}},
            },
            "compose.dispatcher.yml": {
                "dispatcher": dict(dispatcher, ports=["7444:7444", "7445:7445"], networks=None,
                                   env={"API_BIND": "127.0.0.1", "API_PORT": "7445",
                                        "API_AUTH_DEFAULT": "deny"}),
            },
            "compose.agent.yml": {
                "agent": {"build": "container/Dockerfile.agent", "container_name": "agent",
                          "restart": "on-failure", "ports": ["7443:7443"],
                          "volumes": agent_volumes("agent"), "networks": ["ctrl-exec-net-agent"],
                          "env": {"DISPATCHER_HOST": "d.example.com"}},
            },
            "compose.multi-agent.yml": {
                "dispatcher": dict(dispatcher, ports=["7445:7445"], networks=["ctrl-exec-net"],
                                   env={"API_BIND": "127.0.0.1", "API_PORT": "7445",
                                        "API_AUTH_DEFAULT": "deny"}),
                "agent-db": {"build": "container/Dockerfile.agent", "hostname": "agent-db",
                             "volumes": agent_volumes("agent-db"), "networks": ["ctrl-exec-net"],
                             "env": {"DISPATCHER_HOST": "dispatcher", "AGENT_ENV": "production",
                                     "AGENT_ROLE": "database"}},
                "agent-web": {"build": "container/Dockerfile.agent", "hostname": "agent-web",
                              "volumes": agent_volumes("agent-web"), "networks": ["ctrl-exec-net"],
                              "env": {"DISPATCHER_HOST": "dispatcher", "AGENT_ENV": "production",
                                      "AGENT_ROLE": "web"}},
            },
        }
        for name, services in expected.items():
            cfg = self.config(name)
            self.assertEqual(sorted(cfg["services"]), sorted(services), name)
            for svc, want in services.items():
                with self.subTest(file=name, service=svc):
                    got = cfg["services"][svc]
                    self.assertEqual(os.path.realpath(got["build"]["context"]), os.path.realpath(SRC))
                    self.assertEqual(got["build"]["dockerfile"], want["build"])
                    self.assertTrue(os.path.exists(os.path.join(SRC, want["build"])))
                    for key in ("container_name", "restart", "hostname"):
                        if key in want:
                            self.assertEqual(got.get(key), want[key], key)
                    env = {k: str(v) for k, v in (got.get("environment") or {}).items()}
                    self.assertEqual(env, want["env"])
                    vols = dict(volume_pair(v) for v in got.get("volumes", []))
                    self.assertEqual(vols, want["volumes"])
                    for v in vols:
                        self.assertIn(v, cfg["volumes"])
                    if "ports" in want:
                        ports = sorted("%s:%s" % (p["published"], p["target"])
                                       for p in got.get("ports", []))
                        self.assertEqual(ports, sorted(want["ports"]))
                    if want.get("networks"):
                        self.assertEqual(sorted(got["networks"]), want["networks"])
                    # The executor in the agent image: CAP_SYS_ADMIN, and mount allowed where
                    # AppArmor's docker-default would deny it (docs/CONTAINERS.md).
                    if svc in AGENT_SERVICES.get(name, []):
                        self.assertEqual(got.get("cap_add"), ["SYS_ADMIN"])
                        self.assertEqual(got.get("security_opt"), ["apparmor=unconfined"])
                    else:
                        self.assertNotIn("cap_add", got)
                        self.assertNotIn("security_opt", got)


class Dockerfiles(harness.TestCase):
    def stages(self, name):
        return rootfs.parse_dockerfile(os.path.join(CONTAINER, name))

    def test_shape(self):
        for name, entry, expose, scratch, scratch_entry in (
                ("Dockerfile.dispatcher", "/dispatcher-entrypoint.sh", ["7444", "7445"],
                 "api-scratch", ["/usr/local/bin/ctrl-exec-api"]),
                ("Dockerfile.agent", "/agent-entrypoint.sh", ["7443"],
                 "agent-scratch", ["/usr/local/bin/ctrl-exec-agent"])):
            with self.subTest(name):
                stages = self.stages(name)
                build, final = stages[0], stages[-1]
                self.assertEqual((build.base, build.name), ("debian:12", "build"))
                # The same Debian packages as the README: its own install-deps script.
                self.assertIn("sh /src/.ci/install-deps", build.text())
                self.assertIn(rootfs.BUILD_ARTIFACT_LINE, build.text())
                self.assertEqual(final.base, "alpine:3.21")
                ops = {}
                for op, args, _ in final.instructions:
                    ops.setdefault(op, []).append(args)
                apk = [a for a in ops["RUN"] if a.startswith("apk ")]
                # su-exec: the agent's entrypoint drops the agent to its user.
                extra = " su-exec" if name == "Dockerfile.agent" else ""
                self.assertEqual(apk, ["apk add --no-cache rsyslog rsyslog-tls ca-certificates"
                                       + extra])
                self.assertNotIn("perl", " ".join(ops["RUN"]))
                self.assertIn("ctrl-exec --install /usr/local/bin", " ".join(ops["RUN"]))
                self.assertEqual(ops["ENTRYPOINT"], ['["%s"]' % entry])
                self.assertEqual(" ".join(ops["EXPOSE"]).split(), expose)
                self.assertIn("container/%s %s" % (entry.lstrip("/"), entry), ops["COPY"])
                sc = [s for s in stages if s.name == scratch]
                self.assertEqual(len(sc), 1)
                self.assertEqual(sc[0].base, "scratch")
                sc_ops = {op: args for op, args, _ in sc[0].instructions}
                self.assertEqual(rootfs.exec_form(sc_ops["ENTRYPOINT"]), scratch_entry)

    def test_dockerignore_sends_what_the_dockerfile_copies(self):
        for name in ("Dockerfile.dispatcher", "Dockerfile.agent"):
            with self.subTest(name):
                ignore = read("container", name + ".dockerignore").splitlines()
                allowed = [l[1:] for l in ignore if l.startswith("!")]
                self.assertIn("*", ignore)
                for stage in self.stages(name):
                    for op, args, _ in stage.instructions:
                        if op != "COPY" or args.startswith("--from="):
                            continue
                        for src in args.split()[:-1]:
                            self.assertTrue(any(src == a or src.startswith(a + "/") for a in allowed),
                                            "%s copies %s, which the .dockerignore excludes" % (name, src))


class Units(harness.TestCase):
    def unit(self, name):
        return read("conf", "systemd", name)

    def test_unit_contents(self):
        agent = self.unit("ctrl-exec-agent.service")
        self.assertIn("\nExecStartPre=+/usr/local/bin/ctrl-exec-agent promote-cert\n", agent)
        self.assertIn("\nExecStart=/usr/local/bin/ctrl-exec-agent serve\n", agent)
        # A restart must not kill the async job supervisors in the unit's cgroup.
        self.assertIn("\nKillMode=process\n", agent)
        api = self.unit("ctrl-exec-api.service")
        for line in ("Type=simple", "ExecStart=/usr/local/bin/ctrl-exec-api", "Restart=on-failure",
                     "RestartSec=5", "User=ctrl-exec", "Group=ctrl-exec", "NoNewPrivileges=yes",
                     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "PrivateDevices=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                     "ReadWritePaths=/var/lib/ctrl-exec", "WantedBy=multi-user.target"):
            self.assertIn("\n" + line + "\n", api)
        maint = self.unit("ctrl-exec-maintenance.service")
        for line in ("Type=oneshot", "ExecStart=/usr/local/bin/ctrl-exec-dispatcher maintain",
                     "After=network-online.target", "Wants=network-online.target"):
            self.assertIn("\n" + line + "\n", maint)
        self.assertNotIn("User=", maint)
        timer = self.unit("ctrl-exec-maintenance.timer")
        for line in ("OnBootSec=5min", "OnUnitActiveSec=4h", "Persistent=true",
                     "WantedBy=timers.target"):
            self.assertIn("\n" + line + "\n", timer)
        renew = self.unit("ctrl-exec-agent-renew.service")
        self.assertIn("\nExecCondition=/usr/local/bin/ctrl-exec-agent cert-staged\n", renew)
        self.assertIn("\nExecStart=systemctl try-restart ctrl-exec-agent.service\n", renew)
        self.assertIn("\nWantedBy=timers.target\n", self.unit("ctrl-exec-agent-renew.timer"))

    def lines(self, name):
        return self.unit(name).splitlines()

    def test_executor_unit(self):
        exe = self.lines("ctrl-exec-exec.service")
        for line in ("Type=simple", "ExecStart=/usr/local/bin/ctrl-exec-exec " + EXEC_ARGS,
                     "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                     "RestartPreventExitStatus=78", "Before=ctrl-exec-agent.service",
                     "RuntimeDirectory=ctrl-exec-agent", "RuntimeDirectoryMode=0755",
                     "WantedBy=multi-user.target"):
            self.assertIn(line, exe)
        # Root, and nothing that its scripts would inherit or that would keep it from making
        # their mount namespaces (the unit's comments say why).
        for key in ("User=", "Group=", "NoNewPrivileges=", "ProtectSystem=", "PrivateTmp=",
                    "CapabilityBoundingSet=", "SystemCallFilter=", "RestrictNamespaces="):
            self.assertEqual([l for l in exe if l.startswith(key)], [], key)

    def test_agent_unit_wants_the_executor_and_owns_no_runtime_directory(self):
        agent = self.lines("ctrl-exec-agent.service")
        self.assertIn("After=network-online.target ctrl-exec-exec.service", agent)
        self.assertIn("Wants=network-online.target ctrl-exec-exec.service", agent)
        self.assertEqual([l for l in agent if l.startswith("Requires=")], [])
        # One owner of /run/ctrl-exec-agent: the agent stopping must not remove the socket.
        owners = [u for u in UNITS if any(l.startswith("RuntimeDirectory=")
                                          for l in self.lines(u))]
        self.assertEqual(owners, ["ctrl-exec-exec.service"])

    def test_openrc_executor_script(self):
        text = read("conf", "openrc", "ctrl-exec-exec")
        self.assertIn('\ncommand="/usr/local/bin/ctrl-exec-exec"\n', text)
        self.assertIn('\ncommand_args="%s"\n' % EXEC_ARGS, text)
        self.assertNotIn("command_user", text, "the executor runs as root")
        self.assertRegex(text, r"\n\tbefore ctrl-exec-agent\n")
        self.assertIn("checkpath --directory --owner root:root --mode 0755 /run/ctrl-exec-agent",
                      text)
        agent = read("conf", "openrc", "ctrl-exec-agent")
        self.assertRegex(agent, r"\n\twant ctrl-exec-exec\n")
        self.assertRegex(agent, r"\n\tafter firewall ctrl-exec-exec\n")

    def test_example_agent_conf_names_the_units_socket(self):
        """The shipped agent.conf turns the executor on, at the socket the units serve."""
        top = []
        for line in read("conf", "agent.conf").splitlines():
            if re.match(r"^\s*\[", line):
                break
            m = re.match(r"^\s*(\w[\w-]*)\s*=\s*(.+?)\s*$", line)
            if m:
                top.append((m.group(1), m.group(2)))
        self.assertEqual([v for k, v in top if k == "executor_socket"], [EXEC_SOCKET])
        self.assertIn("\n[profile default]\nrun_as = nobody\n", read("conf", "agent.conf"))
        self.assertNotRegex(read("container", "agent-scratch.conf"), r"(?m)^\s*executor_socket")

    def test_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze or not os.path.isdir("/usr/lib/systemd/system"):
            self.skipTest("systemd-analyze (Debian: systemd) is not installed")
        # A throw-away root with the units, our binary and links where the units expect
        # them, the stock targets, and stand-ins for kill and systemctl.
        root = tempfile.mkdtemp(dir=self.root.dir)
        units = os.path.join(root, "etc/systemd/system")
        os.makedirs(units)
        for u in UNITS:
            shutil.copy(os.path.join(CONF, "systemd", u), units)
        bindir = os.path.join(root, "usr/local/bin")
        os.makedirs(bindir)
        shutil.copy(harness.BINARY, bindir)
        subprocess.run([os.path.join(bindir, "ctrl-exec"), "--install", bindir], check=True)
        targets = os.path.join(root, "usr/lib/systemd/system")
        os.makedirs(targets)
        for t in os.listdir("/usr/lib/systemd/system"):
            if t.endswith(".target"):
                shutil.copy("/usr/lib/systemd/system/" + t, targets, follow_symlinks=True)
        for stand_in in ("bin/kill", "usr/bin/systemctl"):
            path = os.path.join(root, stand_in)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(path, 0o755)
        p = subprocess.run([analyze, "verify", "--root=" + root] + UNITS,
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))


class Paths(harness.TestCase):
    """Every ctrl-exec path in conf/ and container/ is a default of src/base/paths.cpp, or a
    file directly in one of its directories; every binary named is one of our applets."""

    PATH_RE = re.compile(r"/(?:etc|var/lib|run|opt)/ctrl-exec[\w.-]*(?:/[\w.-]+)*")

    def files(self):
        for top in ("conf", "container"):
            for dirpath, _, names in os.walk(os.path.join(SRC, top)):
                for n in names:
                    yield os.path.join(dirpath, n)

    def test_paths_are_the_binarys(self):
        defaults = set(re.findall(r'"(/[^"]+)"', read("src", "base", "paths.cpp")))
        self.assertIn("/etc/ctrl-exec-agent/agent.conf", defaults)
        bad = []
        for f in self.files():
            with open(f) as fh:
                text = fh.read()
            for m in self.PATH_RE.finditer(text):
                p = m.group(0).rstrip(".")
                if p in defaults or os.path.dirname(p) in defaults:
                    continue
                bad.append("%s: %s" % (os.path.relpath(f, SRC), p))
        self.assertEqual(bad, [])

    def test_binaries_are_our_applets(self):
        listing = subprocess.run([harness.BINARY, "--list"], capture_output=True, text=True).stdout
        applets = {line.split()[0] for line in listing.splitlines()} | {"ctrl-exec"}
        bad = []
        for f in self.files():
            with open(f) as fh:
                for name in re.findall(r"/usr/local/bin/([\w.-]+)", fh.read()):
                    if name not in applets:
                        bad.append("%s: /usr/local/bin/%s" % (os.path.relpath(f, SRC), name))
        self.assertEqual(bad, [])

    def test_entrypoint_dirs_are_the_defaults(self):
        for name, want in (("dispatcher", "CONF_DIR=/etc/ctrl-exec\n"),
                           ("agent", "CONF_DIR=/etc/ctrl-exec-agent\n")):
            self.assertIn(want, read("container", "%s-entrypoint.sh" % name))


if __name__ == "__main__":
    harness.main()
