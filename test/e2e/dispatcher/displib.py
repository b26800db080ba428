"""A dispatcher with a fleet of real agents, paired for real, in temp roots on loopback.

Each agent runs in its own root with its own port, under a UTS namespace whose host name is its
registry name (aN.fleet.test), because the agent names itself after its host at pairing and at
renewal. Pairing goes through `ced pairing-mode`, `ctrl-exec-agent request-pairing --background`
and `ced approve`, as an operator would do it.
"""
import ctypes
import fcntl
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pairing"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "agent"))
import agentlib  # noqa: E402
import harness  # noqa: E402
import pairlib  # noqa: E402

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWUTS = 0x04000000

SCRIPTS = {
    "noop": "#!/bin/sh\necho ok\n",
    "echo-args": "#!/bin/sh\nprintf 'argc=%s\\n' $#\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    "fail": "#!/bin/sh\necho about to fail\necho failure detail >&2\nexit 3\n",
    "sleeper": "#!/bin/sh\nsleep \"${1:-1}\"\necho slept\n",
    "stdin-dump": "#!/bin/sh\ncat\n",
}


def in_uts(hostname):
    """A preexec_fn: a new UTS namespace whose host name is `hostname`."""
    name = hostname.encode()

    def fn():
        if _libc.unshare(_CLONE_NEWUTS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
        if _libc.sethostname(name, len(name)) != 0:
            raise OSError(ctypes.get_errno(), "sethostname")
    return fn


class AgentHost:
    """One agent: its root, port, host name, scripts and `serve` process."""

    def __init__(self, index, conf_extra="", scripts=None):
        self.name = "a%d.fleet.test" % index
        self.root = harness.Root("a%d" % index)
        self.port = harness.free_port()
        self.proc = None
        script_dir = self.root.path("/opt/ctrl-exec-scripts")
        os.makedirs(script_dir, exist_ok=True)
        lines = []
        for name, body in dict(SCRIPTS, **(scripts or {})).items():
            p = os.path.join(script_dir, name + ".sh")
            with open(p, "w") as f:
                f.write(body)
            os.chmod(p, 0o755)
            lines.append("%s = %s" % (name, p))
        self.root.write("/etc/ctrl-exec-agent/scripts.conf", "\n".join(lines) + "\n")
        self.write_conf(conf_extra)

    def write_conf(self, extra=""):
        pairlib.write_agent_conf(self.root, port=self.port, extra=extra + "\n[profile default]\n")

    def run(self, args, **kw):
        return self.root.run(args, preexec_fn=in_uts(self.name), **kw)

    def start(self):
        self.proc = self.root.spawn(["ctrl-exec-agent", "serve"], preexec_fn=in_uts(self.name))
        harness.wait_until(lambda: harness.port_open(self.port) or not self.proc.alive(),
                           what="agent %s to listen" % self.name)
        if not self.proc.alive():
            raise AssertionError("agent %s exited: %s" % (self.name, self.proc.err()))

    def stop(self):
        if self.proc:
            if self.proc.alive():
                os.kill(self.proc.pid, signal.SIGCONT)  # in case a test stopped it
            self.proc.stop()
            self.proc = None

    def restart(self):
        """As the agent's unit does: promote a staged cert, then serve."""
        self.stop()
        r = self.run(["ctrl-exec-agent", "promote-cert"])
        if r.rc != 0:
            raise AssertionError("promote-cert: %r" % r)
        self.start()

    def log(self):
        return self.proc.err() if self.proc else ""

    def trusted(self):
        path = self.root.path("/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers")
        out = {}
        if os.path.exists(path):
            for line in open(path).read().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    serial, ident = line.split(None, 1)
                    out[serial] = ident
        return out

    def cert_not_after(self):
        return harness.sh("openssl x509 -noout -enddate -in %s" % self.root.path(
            "/etc/ctrl-exec-agent/agent.crt")).stdout.strip().split("=", 1)[1]


class Fleet:
    """A dispatcher (the test's root) and `n` paired, serving agents."""

    def __init__(self, test, n=5, dispatcher_extra="", agent_extra="", scripts=None):
        self.test = test
        self.disp = test.root
        pairlib.setup_dispatcher(self.disp, "pairing_rate_limit_disable = 1\n" + dispatcher_extra)
        self.agents = [AgentHost(i + 1, agent_extra, scripts) for i in range(n)]
        for a in self.agents:
            test.addCleanup(a.root.cleanup)
            # Async jobs outlive `serve`: let them end before the root goes.
            test.addCleanup(agentlib.wait_for_jobs, a.root)
            test.addCleanup(a.stop)
        self.pair_all()
        for a in self.agents:
            a.start()

    def pair_all(self):
        port = harness.free_port()
        pm = pairlib.spawn_pairing_mode(self.disp, port, timeout=120)
        reqids = []
        for a in self.agents:
            r = a.run(["ctrl-exec-agent", "request-pairing", "--dispatcher", "127.0.0.1",
                       "--port", str(port), "--lookup-by", "ip", "--background",
                       "--timeout", "60"])
            if r.rc != 0:
                raise AssertionError("request-pairing %s: %r" % (a.name, r))
            reqids.append(r.out.strip())
        for a, reqid in zip(self.agents, reqids):
            r = self.ced("approve", reqid)
            if r.rc != 0:
                raise AssertionError("approve %s: %r" % (a.name, r))
        for a in self.agents:
            crt = a.root.path("/etc/ctrl-exec-agent/agent.crt")
            harness.wait_until(lambda: os.path.exists(crt) and a.trusted(), timeout=30,
                               what="%s to store its cert" % a.name)
        pm.stop()

    def names(self):
        return [a.name for a in self.agents]

    def ced(self, *args, **kw):
        return self.disp.run(["ced"] + list(args), **kw)

    def ced_json(self, *args, **kw):
        r = self.ced("--json", *args, **kw)
        try:
            return r, json.loads(r.out)
        except ValueError:
            raise AssertionError("not JSON: %r" % r)

    def log_lines(self, action, text=None):
        """`ACTION=<action> ...` lines the dispatcher logged in `text` (stderr of a run)."""
        prefix = "ctrl-exec-dispatcher: ACTION=%s " % action
        return [l[len("ctrl-exec-dispatcher: "):] for l in (text or "").splitlines()
                if l.startswith(prefix)]

    def registry(self, name):
        return json.loads(self.disp.read("/var/lib/ctrl-exec/agents/%s.json" % name))

    def hold_lock(self, host, script):
        """An flock on the lock file as another dispatcher process holds it; returns the fd."""
        d = self.disp.path("/var/lib/ctrl-exec/locks")
        os.makedirs(d, exist_ok=True)
        fd = os.open(os.path.join(d, "%s--%s.lock" % (host, script)), os.O_CREAT | os.O_RDWR,
                     0o660)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.test.addCleanup(os.close, fd)
        return fd


def by_host(results):
    return {r["host"]: r for r in results}


def without_logs(err):
    """stderr without the log lines (CTRL_EXEC_LOG=stderr puts them there)."""
    return "".join(l for l in err.splitlines(True)
                   if not l.startswith("ctrl-exec-dispatcher: ACTION="))
