"""A real `ctrl-exec-agent serve` in a temp root, with a throw-away CA, a paired agent cert,
dispatcher certs, a trusted map and an allowlist, driven with curl (OpenSSL, like the original's
peers) and, for exact bytes, Python's ssl module.
"""
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

ETC = "/etc/ctrl-exec-agent"
STATE = "/var/lib/ctrl-exec-agent"

# name -> script body; installed under <root>/opt/ctrl-exec-scripts with mode 0755.
SCRIPTS = {
    "noop": "#!/bin/sh\necho ok\n",
    "echo-args": "#!/bin/sh\nprintf 'argc: %s\\n' $#\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    "stdin-dump": "#!/bin/sh\ncat\n",
    "env-dump": "#!/bin/sh\nenv | sort\n",
    "fail": "#!/bin/sh\necho failing >&2\nexit 3\n",
    "big-stderr": "#!/bin/sh\nhead -c 10485760 /dev/zero | tr '\\0' 'e' >&2\necho done\n",
    "self-kill": "#!/bin/sh\necho before\nkill -KILL $$\n",
    "sleeper": "#!/bin/sh\nsleep \"${1:-1}\"\necho slept\n",
    "utf8": "#!/bin/sh\nprintf 'caf\\303\\251 \\342\\234\\223 bad:\\377\\376 end'\n",
}


class Agent:
    """Sets up a paired agent in `root` (a harness.Root) and starts/stops `serve`."""

    def __init__(self, root, conf_extra="", scripts=None, rate_limit_disable=True):
        self.root = root
        self.pki = root.path("/pki")
        os.makedirs(self.pki, exist_ok=True)
        harness.openssl_ca(self.pki)
        harness.openssl_leaf(self.pki, "agent", "agent.test", "0a11")
        harness.openssl_leaf(self.pki, "disp", "ctrl-exec-dispatcher", "7f3a9c")
        harness.openssl_leaf(self.pki, "disp2", "ctrl-exec-dispatcher-2", "7f3a9d")
        # A certificate from the right CA whose serial is in no map (an agent's, say).
        harness.openssl_leaf(self.pki, "stranger", "other-agent", "5eed")
        # A certificate from another CA altogether.
        harness.openssl_ca(self.pki, name="otherca", cn="other CA")
        harness.openssl_leaf(self.pki, "foreign", "ctrl-exec-dispatcher", "7f3a9c", ca="otherca")
        for f in ("agent.crt", "agent.key"):
            with open(os.path.join(self.pki, f)) as src:
                root.write(ETC + "/" + f, src.read(), 0o640)
        with open(os.path.join(self.pki, "ca.crt")) as src:
            root.write(ETC + "/ca.crt", src.read(), 0o644)
        os.makedirs(root.path(STATE), exist_ok=True)
        self.write_map("7f3a9c disp-1\n7f3a9d disp-2\n")
        self.scripts_dir = root.path("/opt/ctrl-exec-scripts")
        os.makedirs(self.scripts_dir, exist_ok=True)
        self.scripts = dict(SCRIPTS)
        self.scripts.update(scripts or {})
        for name, body in self.scripts.items():
            self.add_script_file(name, body)
        self.write_allowlist(self.scripts)
        self.port = harness.free_port()
        self.conf_extra = conf_extra
        self.rate_limit_disable = rate_limit_disable
        self.write_conf()
        self.proc = None

    # --- files ---------------------------------------------------------------------------

    def script_path(self, name):
        return os.path.join(self.scripts_dir, name + ".sh")

    def add_script_file(self, name, body):
        p = self.script_path(name)
        with open(p, "w") as f:
            f.write(body)
        os.chmod(p, 0o755)
        return p

    def add_gate_script(self, name, then="echo released"):
        """A script that marks that it started, then waits until the test releases it.

        Returns a Gate; once released (or after 60 s, so a failing test never leaves it
        behind) the script runs the shell line `then`. Tests wait on the marker, never on a
        sleep.
        """
        gate = Gate(self.root.path("/gates"), name)
        body = ("#!/bin/sh\n"
                ": > '%s.started.'$$\n"
                "i=0\n"
                "while [ ! -e '%s' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
                "%s\n" % (gate.base, gate.release_path, then))
        self.add_script_file(name, body)
        self.scripts[name] = body
        self.write_allowlist(self.scripts)  # a running agent needs a SIGHUP to see it
        return gate

    def write_allowlist(self, names, extra=""):
        lines = ["%s = %s" % (n, self.script_path(n)) for n in sorted(names)]
        self.root.write(ETC + "/scripts.conf", "\n".join(lines) + "\n" + extra)

    def write_map(self, text):
        self.root.write(STATE + "/ctrl-exec-dispatchers", text)

    def write_conf(self, extra=None):
        if extra is not None:
            self.conf_extra = extra
        text = (
            "port = %d\n"
            "cert = %s\n"
            "key = %s\n"
            "ca = %s\n"
            "%s"
            "%s\n"
            "[profile default]\n"
            "run_as = nobody\n"
            % (self.port, self.root.path(ETC + "/agent.crt"), self.root.path(ETC + "/agent.key"),
               self.root.path(ETC + "/ca.crt"),
               "rate_limit_disable = 1\n" if self.rate_limit_disable else "",
               self.conf_extra))
        self.root.write(ETC + "/agent.conf", text)

    # --- the process ---------------------------------------------------------------------

    def start(self, wait=True, env=None):
        self.proc = self.root.spawn(["ctrl-exec-agent", "serve"], env=env)
        if wait:
            harness.wait_until(lambda: "ACTION=start" in self.proc.err() or not self.proc.alive(),
                               what="agent start")
            if not self.proc.alive():
                raise AssertionError("agent exited: %s" % self.proc.err())
        return self.proc

    def stop(self):
        if self.proc:
            rc = self.proc.stop()
            self.proc = None
            return rc
        return None

    def log(self):
        return self.proc.err() if self.proc else ""

    def wait_log(self, needle, timeout=10):
        return harness.wait_until(lambda: needle in self.log(), timeout, what="log %r" % needle)

    def log_lines(self, action):
        prefix = "ctrl-exec-agent: ACTION=%s " % action
        return [l for l in self.log().splitlines() if l.startswith(prefix) or
                l == prefix.rstrip()]

    # --- clients -------------------------------------------------------------------------

    def cert(self, name):
        return os.path.join(self.pki, name + ".crt"), os.path.join(self.pki, name + ".key")

    def curl(self, method, path, body=None, who="disp", timeout=30, headers=()):
        """(status, parsed JSON or raw body, raw headers) via curl with `who`'s cert."""
        cert, key = self.cert(who) if who else (None, None)
        data = body if body is None or isinstance(body, str) else json.dumps(body)
        status, text, head = harness.curl("https://127.0.0.1:%d%s" % (self.port, path),
                                          cert=cert, key=key, method=method, data=data,
                                          timeout=timeout, headers=headers)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return status, parsed, head

    def post(self, path, body, **kw):
        return self.curl("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.curl("GET", path, **kw)

    def run(self, script, args=(), reqid="00000000deadbeef", **kw):
        extra = kw.pop("extra", {})
        body = {"script": script, "args": list(args), "reqid": reqid, "username": "alice",
                "token": "tok"}
        body.update(extra)
        return self.post("/run", body, **kw)

    def tls_socket(self, who="disp", timeout=10):
        """A TLS socket with `who`'s client cert (OpenSSL through Python's ssl module)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(os.path.join(self.pki, "ca.crt"))
        if who:
            ctx.load_cert_chain(*self.cert(who))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return ctx.wrap_socket(raw)

    def raw(self, data, who="disp", timeout=10):
        """Sends raw request bytes over TLS and returns everything read until the close."""
        s = self.tls_socket(who, timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()


class Gate:
    """The test's side of add_gate_script: how many runs started, and their release."""

    def __init__(self, directory, name):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.base = os.path.join(directory, name)
        self.release_path = self.base + ".go"

    def started(self):
        prefix = os.path.basename(self.base) + ".started."
        return len([f for f in os.listdir(self.dir) if f.startswith(prefix)])

    def pids(self):
        prefix = os.path.basename(self.base) + ".started."
        return [int(f[len(prefix):]) for f in os.listdir(self.dir) if f.startswith(prefix)]

    def wait_started(self, count=1, timeout=15):
        return harness.wait_until(lambda: self.started() >= count, timeout,
                                  what="%d run(s) of %s started" % (count, self.base))

    def release(self):
        with open(self.release_path, "w"):
            pass


def perl_request(method, path, body=b"", host="agent:7443"):
    """A request exactly as the Perl dispatcher's LWP sends it (agent-and-wire §3.1)."""
    head = ("%s %s HTTP/1.1\r\n"
            "TE: deflate,gzip;q=0.3\r\n"
            "Connection: TE, close\r\n"
            "Host: %s\r\n"
            "User-Agent: libwww-perl/6.68\r\n" % (method, path, host))
    if body or method == "POST":
        head += "Content-Length: %d\r\nContent-Type: application/json\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode(), body


class AgentTestCase(harness.TestCase):
    """A TestCase with self.agent set up (not started) in the test's root."""

    conf_extra = ""
    rate_limit_disable = True

    def setUp(self):
        super().setUp()
        self.agent = Agent(self.root, self.conf_extra, rate_limit_disable=self.rate_limit_disable)
        self.addCleanup(wait_for_jobs, self.root)
        self.addCleanup(self.agent.stop)


def root_processes(root):
    """PIDs of processes running this root's copy of the binary (e.g. async job supervisors)."""
    # By executable, not argv[0]: supervisors are started as /proc/self/exe.
    prefix = root.bin + "/"
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % pid)
            with open("/proc/%s/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except OSError:
            continue
        if exe.startswith(prefix):
            pids.append(int(pid))
    return pids


def wait_for_jobs(root, timeout=30):
    """Lets async jobs a test left running finish before its root is removed (a job that
    ends later would write its record into a fresh copy of the deleted tree); kills them at
    the deadline."""
    deadline = time.monotonic() + timeout
    while root_processes(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in root_processes(root):
        try:
            os.killpg(pid, 9)
        except OSError:
            pass


def wait(predicate, timeout=10, what="condition"):
    return harness.wait_until(predicate, timeout, what=what)


def now():
    return time.monotonic()
