"""Shared helpers for the e2e tests: real ctrl-exec processes in a temp root on loopback.

Every test gets a fresh Root: a temp directory used as CTRL_EXEC_ROOT, with the binary's applet
symlinks in <root>/bin (made by `ctrl-exec --install`). Logs go to stderr (CTRL_EXEC_LOG=stderr)
so tests can check log lines. Processes started through a Root are stopped by PID at cleanup.
Nothing here touches /etc or a fixed port.
"""
import ctypes
import json
import os
import pty
import select
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import time
import unittest

BINARY = os.environ.get("CX_BINARY") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "applets", "ctrl-exec")
BINARY = os.path.abspath(BINARY)
SOURCE_ROOT = os.environ.get("CX_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r)" % (self.rc, self.out, self.err)


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host="127.0.0.1"):
    """A port free right now on every address, chosen below the kernel's ephemeral range: a
    port from bind(0) is one that the outgoing connections of the same test (hundreds, in the
    abuse tests) may also take as their local port, and a server then fails to bind it."""
    low, _ = _ephemeral_range()
    top = max(low - 1, 10001)
    for _ in range(200):
        port = random.randint(10000, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWUTS = 0x04000000


def in_uts(hostname):
    """A preexec_fn: a new UTS namespace whose host name is `hostname` (an agent names itself
    after its host at pairing and at renewal)."""
    name = hostname.encode()

    def fn():
        if _libc.unshare(_CLONE_NEWUTS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
        if _libc.sethostname(name, len(name)) != 0:
            raise OSError(ctypes.get_errno(), "sethostname")
    return fn


def run_with_pty(root, args, on_pty="stderr", env=None, timeout=60):
    """Runs an applet with `on_pty` ("stdout" or "stderr") on a pty and the other stream on a
    pipe; returns (rc, stdout, stderr) as text."""
    master, slave = pty.openpty()
    e = dict(root.env)
    e.update(env or {})
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, on_pty: slave}
    try:
        p = subprocess.Popen([os.path.join(root.bin, args[0])] + list(args[1:]),
                             stdin=subprocess.DEVNULL, env=e, cwd=root.dir, **streams)
        os.close(slave)
        slave = -1
        got = b""
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                p.kill()
                raise AssertionError("no end of output within %ss" % timeout)
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the pty has gone
                break
            if not chunk:
                break
            got += chunk
        piped = p.stdout if on_pty == "stderr" else p.stderr
        other = piped.read().decode(errors="replace")
        piped.close()
        rc = p.wait(timeout)
        text = got.decode(errors="replace")
        return (rc, other, text) if on_pty == "stderr" else (rc, text, other)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def read_ndjson(stream, on_event=None, timeout=60):
    """Reads JSON lines from a pipe as they come, until EOF; `on_event` sees each one as it
    arrives. Returns them all."""
    events, buf = [], b""
    fd = stream.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError("no output within %ss; so far %r" % (timeout, events))
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            ev = json.loads(line)
            events.append(ev)
            if on_event:
                on_event(ev)
    if buf.strip():
        events.append(json.loads(buf))
    return events


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls `predicate` until it returns something truthy; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Proc:
    """A background process whose stdout/stderr go to files in the root."""

    def __init__(self, popen, out_path, err_path):
        self.popen, self.out_path, self.err_path = popen, out_path, err_path

    @property
    def pid(self):
        return self.popen.pid

    def out(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def err(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout=10):
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout=5):
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=timeout)

    def wait_for_log(self, needle, timeout=10):
        return wait_until(lambda: needle in self.err(), timeout, what="log line %r" % needle)


class Root:
    """A temp CTRL_EXEC_ROOT with the applet symlinks installed in <root>/bin."""

    def __init__(self, name="root", parent=None):
        # `parent`: where the temp root goes (default: the system temp dir).
        self.dir = tempfile.mkdtemp(prefix="cx-e2e-%s-" % name, dir=parent)
        self.bin = os.path.join(self.dir, "bin")
        os.makedirs(self.bin)
        shutil.copy(BINARY, os.path.join(self.bin, "ctrl-exec"))
        subprocess.run([os.path.join(self.bin, "ctrl-exec"), "--install", self.bin], check=True)
        self.env = dict(os.environ)
        self.env.update({
            "CTRL_EXEC_ROOT": self.dir,
            "CTRL_EXEC_LOG": "stderr",
            "PATH": self.bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        })
        self.env.pop("ENVEXEC_TOKEN", None)
        self.procs = []
        self._n = 0

    def path(self, rel):
        """<root>/<rel>, for an absolute default path such as /etc/ctrl-exec/ca.crt."""
        return os.path.join(self.dir, rel.lstrip("/"))

    def write(self, rel, content, mode=0o644):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        return p

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def exists(self, rel):
        return os.path.exists(self.path(rel))

    def run(self, args, input=None, timeout=60, env=None, preexec_fn=None):
        """Runs an applet (args[0] is an applet name in <root>/bin) to completion."""
        e = dict(self.env)
        e.update(env or {})
        cmd = [os.path.join(self.bin, args[0])] + list(args[1:])
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                           env=e, cwd=self.dir, preexec_fn=preexec_fn)
        return Result(p.returncode, p.stdout, p.stderr)

    def spawn(self, args, env=None, stdin=subprocess.DEVNULL, preexec_fn=None):
        """Starts an applet in the background; it is stopped at cleanup."""
        e = dict(self.env)
        e.update(env or {})
        self._n += 1
        out = os.path.join(self.dir, "proc-%d-%s.out" % (self._n, args[0]))
        err = os.path.join(self.dir, "proc-%d-%s.err" % (self._n, args[0]))
        cmd = [os.path.join(self.bin, args[0])] + list(args[1:])
        popen = subprocess.Popen(cmd, stdin=stdin, stdout=open(out, "w"), stderr=open(err, "w"),
                                 env=e, cwd=self.dir, text=True, preexec_fn=preexec_fn)
        proc = Proc(popen, out, err)
        self.procs.append(proc)
        return proc

    def cleanup(self):
        for p in self.procs:
            try:
                p.stop(timeout=3)
            except Exception:
                pass
        if os.environ.get("CX_KEEP_ROOT"):
            print("kept root:", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def sh(cmd, cwd=None, check=True):
    """Runs a fixture command (never the code under test) through /bin/sh."""
    p = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError("fixture command failed: %s\n%s%s" % (cmd, p.stdout, p.stderr))
    return p


def openssl_ca(directory, name="ca", cn="ctrl-exec CA"):
    """A throw-away EC P-256 CA made with the openssl CLI: <name>.crt/.key in `directory`."""
    os.makedirs(directory, exist_ok=True)
    sh("openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout %s.key "
       "-out %s.crt -days 30 -subj '/CN=%s'" % (name, name, cn), cwd=directory)


def openssl_leaf(directory, name, cn, serial_hex, ca="ca", days=30):
    """A leaf cert <name>.crt/.key signed by <ca>, with the given hex serial."""
    sh("openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout %s.key "
       "-out %s.csr -subj '/CN=%s' && openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key "
       "-set_serial 0x%s -days %d -out %s.crt"
       % (name, name, cn, name, ca, ca, serial_hex, days, name), cwd=directory)


def curl(url, cert=None, key=None, cacert=None, method=None, data=None, headers=(),
         timeout=30, extra=()):
    """An HTTP(S) request with Debian's curl (built on OpenSSL, like the original's peers).

    Returns (status, body, raw_headers); status is 0 when curl could not get a response.
    Without `cacert`, the server certificate is not verified (-k); the client cert is still
    sent when given.
    """
    cmd = ["curl", "-sS", "-D", "-", "--max-time", str(timeout)]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    if cacert:
        cmd += ["--cacert", cacert]
    else:
        cmd += ["-k"]
    if method:
        cmd += ["-X", method]
    if data is not None:
        cmd += ["--data-binary", data if isinstance(data, str) else json.dumps(data),
                "-H", "Content-Type: application/json"]
    for h in headers:
        cmd += ["-H", h]
    cmd += list(extra) + [url]
    # Bytes, decoded by hand: text mode would turn the CRLFs of the head into LFs.
    p = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
    raw = p.stdout.decode("utf-8", "replace")
    if "\r\n\r\n" not in raw:
        return 0, "", raw + p.stderr.decode("utf-8", "replace")
    head, body = raw.split("\r\n\r\n", 1)
    status = int(head.split()[1]) if head.startswith("HTTP/") else 0
    return status, body, head


def parse_metrics(text):
    """The samples of a Prometheus text exposition: {(name, ((label, value), ...)): float},
    labels sorted. Comment lines are skipped; label values must not contain '",'."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, rest = series.partition("{")
        labels = ()
        if rest:
            pairs = [p.split("=", 1) for p in rest.rstrip("}").split('",') if p]
            labels = tuple(sorted((k, v.strip('"')) for k, v in pairs))
        out[(name, labels)] = float(value)
    return out


def promtool_check_metrics(testcase, text):
    """Feeds `text` to `promtool check metrics` on stdin and fails the test unless it is clean.
    Skips the test, saying why, when promtool (Debian's prometheus package) is not installed;
    call it after the test's other checks."""
    tool = shutil.which("promtool")
    if not tool:
        testcase.skipTest("promtool not found (apt-get install prometheus); the rest passed")
    p = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    testcase.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s\n%s"
                         % (p.stdout.decode(), p.stderr.decode(), text))


class TestCase(unittest.TestCase):
    """A unittest.TestCase with a fresh Root per test (self.root) and cleanup."""

    def setUp(self):
        self.root = Root(self.id().split(".")[-1][:40])
        self.addCleanup(self.root.cleanup)


def main():
    unittest.main(verbosity=2)
