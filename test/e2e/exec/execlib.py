"""A real `ctrl-exec-exec serve` in a temp root, driven over its unix socket by a Python client
that speaks the frame of agent-and-wire §4.8, written here from the spec (not from our C++
encoder), so a drift on either side shows.

Roots live under /var/tmp, not /tmp: a profile with `writable` gets a private tmpfs on /tmp,
which would hide a root under /tmp from its scripts. Roots are mode 0755 so that a script run
as nobody can reach its files.
"""
import os
import shlex
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

ETC = "/etc/ctrl-exec-agent"
STATE = "/var/lib/ctrl-exec-agent"
SCRIPTS_DIR = "/opt/ctrl-exec-scripts"
SOCKET = "/run/ctrl-exec-agent/exec.sock"
ROOTS_PARENT = "/var/tmp"
NOBODY = 65534
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_FRAME = 16 << 20
TRUNCATED = b"\n[output truncated]\n"

# --- the frame (agent-and-wire §4.8), big-endian -------------------------------------------


def u32(n):
    return struct.pack(">I", n)


def field(data):
    """field = u32 len, len bytes"""
    return u32(len(data)) + data


def request_body(script, args=(), stdin=b"", reqid=b"req-1", dispatcher=b"disp-1", argc=None):
    """The bytes after total_len: reqid, dispatcher_id, script_name, stdin_bytes, u32 argc,
    argc x arg. `argc` overrides the count (to lie about it)."""
    args = [a.encode() if isinstance(a, str) else a for a in args]
    script = script.encode() if isinstance(script, str) else script
    return (field(reqid) + field(dispatcher) + field(script) + field(stdin) +
            u32(len(args) if argc is None else argc) + b"".join(field(a) for a in args))


def request(script, args=(), stdin=b"", **kw):
    """A whole request frame: u32 total_len, then the body."""
    body = request_body(script, args, stdin, **kw)
    return u32(len(body)) + body


def response(exit_code, out=b"", err=b""):
    """response = i32 exit, field stdout, field stderr"""
    return struct.pack(">i", exit_code) + field(out) + field(err)


MALFORMED = response(-1, b"", b"executor: malformed request\n")


class Reply:
    def __init__(self, exit_code, out, err, raw):
        self.exit, self.out, self.err, self.raw = exit_code, out, err, raw

    def tuple(self):
        return (self.exit, self.out, self.err)

    def __repr__(self):
        return "Reply(exit=%r, out=%r, err=%r)" % (self.exit, self.out[:2000], self.err[:2000])


def parse_response(raw):
    """Exactly one response and nothing after it, else an AssertionError naming the bytes."""
    def fail(why):
        raise AssertionError("%s: %r" % (why, raw[:200]))
    if len(raw) < 12:
        fail("short response")
    exit_code = struct.unpack(">i", raw[:4])[0]
    pos = 4
    fields = []
    for _ in range(2):
        if len(raw) < pos + 4:
            fail("response cut in a field length")
        n = struct.unpack(">I", raw[pos:pos + 4])[0]
        pos += 4
        if len(raw) < pos + n:
            fail("response field overruns the bytes")
        fields.append(raw[pos:pos + n])
        pos += n
    if pos != len(raw):
        fail("%d bytes after the response" % (len(raw) - pos))
    return Reply(exit_code, fields[0], fields[1], raw)


def exchange(sock_path, data, timeout=30, half_close=False):
    """Connects, sends `data`, optionally shuts down the write side, and returns every byte
    read until the executor closes. A send the executor cut short is not an error: what it
    answered (perhaps nothing) is the result."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def call(sock_path, script, args=(), stdin=b"", timeout=30, **kw):
    return parse_response(exchange(sock_path, request(script, args, stdin, **kw), timeout))


# --- processes ------------------------------------------------------------------------------


def proc_state(pid):
    """(state letter, pgrp) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid):
    """True while `pid` exists and is not a zombie (a killed orphan may stay a zombie here)."""
    st = proc_state(pid)
    return st is not None and st[0] not in ("Z", "X")


def live_group_members(pgid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_state(int(entry))
            if st and st[1] == pgid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def own_mounts_under(path):
    """Mount points at or under `path` in this (the host's) mount namespace."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == path or p.startswith(path.rstrip("/") + "/")]


# --- the setup ------------------------------------------------------------------------------


class Script:
    def __init__(self, body, profile=None, mode=0o755):
        self.body, self.profile, self.mode = body, profile, mode


class Exec:
    """An executor's files in `root` (a harness.Root): agent.conf with `profiles` (name ->
    the section's lines), scripts under <root>/opt/ctrl-exec-scripts (name -> Script or a
    body), the allowlist, and `serve` started on demand."""

    def __init__(self, root, scripts, profiles=None, conf_extra="", scripts_conf=None):
        self.root = root
        os.chmod(root.dir, 0o755)
        self.conf = root.path(ETC + "/agent.conf")
        self.scripts_conf = scripts_conf or root.path(ETC + "/scripts.conf")
        self.sock = root.path(SOCKET)
        self.scripts_dir = root.path(SCRIPTS_DIR)
        for d in (ETC, STATE, SCRIPTS_DIR, os.path.dirname(SOCKET)):
            os.makedirs(root.path(d), exist_ok=True)
            self.chmod_path(root.path(d))
        os.makedirs(os.path.dirname(self.scripts_conf), exist_ok=True)
        self.chmod_path(os.path.dirname(self.scripts_conf))
        self.scripts = {}
        for name, s in scripts.items():
            self.add_script(name, s, write_allowlist=False)
        self.write_allowlist()
        self.profiles = dict(profiles if profiles is not None else {"default": "run_as = nobody"})
        self.conf_extra = conf_extra
        self.write_conf()
        self.proc = None

    def chmod_path(self, path):
        """Makes `path` and its parents inside the root traversable by everyone."""
        while path.startswith(self.root.dir):
            os.chmod(path, 0o755)
            path = os.path.dirname(path)

    def script_path(self, name):
        return os.path.join(self.scripts_dir, name + ".sh")

    def add_script(self, name, s, write_allowlist=True):
        if not isinstance(s, Script):
            s = Script(s)
        self.scripts[name] = s
        p = self.script_path(name)
        with open(p, "wb") as f:
            f.write(s.body.encode() if isinstance(s.body, str) else s.body)
        os.chmod(p, s.mode)
        if write_allowlist:
            self.write_allowlist()
        return p

    def allowlist_text(self):
        lines = []
        for name in sorted(self.scripts):
            s = self.scripts[name]
            lines.append("%s = %s%s" % (name, self.script_path(name),
                                        " profile=%s" % s.profile if s.profile else ""))
        return "\n".join(lines) + "\n"

    def write_allowlist(self, extra=""):
        with open(self.scripts_conf, "w") as f:
            f.write(self.allowlist_text() + extra)

    def conf_text(self):
        text = ("port = 7443\n"
                "cert = %s\n"
                "key = %s\n"
                "ca = %s\n"
                "%s\n" % (self.root.path(ETC + "/agent.crt"), self.root.path(ETC + "/agent.key"),
                          self.root.path(ETC + "/ca.crt"), self.conf_extra))
        for name, body in self.profiles.items():
            text += "[profile %s]\n%s\n" % (name, body.strip("\n"))
        return text

    def write_conf(self, text=None):
        with open(self.conf, "w") as f:
            f.write(self.conf_text() if text is None else text)

    # --- the process ---------------------------------------------------------------------

    def serve_args(self, peer_user="nobody", sock=None):
        return ["ctrl-exec-exec", "serve", sock or self.sock, self.conf, self.scripts_conf,
                peer_user]

    def start(self, peer_user="nobody", setup=None):
        """Starts serve; with `setup` (a shell command line), serve runs in a mount namespace
        of its own (unshare -m) after that line has run there, so the line may mount things
        that no other process sees and that go away with the executor."""
        args = self.serve_args(peer_user)
        if setup is None:
            self.proc = self.root.spawn(args)
        else:
            args[0] = os.path.join(self.root.bin, args[0])
            line = "mount --make-rprivate / && %s && exec %s" % (
                setup, " ".join(shlex.quote(a) for a in args))
            self.proc = spawn_command(self.root, ["unshare", "-m", "sh", "-ec", line], "exec-ns")
        wait_listening(self.sock, self.proc)
        return self.proc

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def log(self):
        return self.proc.err() if self.proc else ""

    def wait_log(self, needle, timeout=10):
        return harness.wait_until(lambda: needle in self.log(), timeout, what="log %r" % needle)

    def call(self, script, args=(), stdin=b"", **kw):
        return call(self.sock, script, args, stdin, **kw)

    def exchange(self, data, **kw):
        return exchange(self.sock, data, **kw)

    def resolve(self, name):
        return self.root.run(["ctrl-exec-exec", "resolve", self.conf, self.scripts_conf, name])


def spawn_command(root, cmd, name):
    """Like Root.spawn, for a command that is not one of the root's applets."""
    out = os.path.join(root.dir, "proc-%s.out" % name)
    err = os.path.join(root.dir, "proc-%s.err" % name)
    with open(out, "w") as o, open(err, "w") as e:
        popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                 env=root.env, cwd=root.dir)
    proc = harness.Proc(popen, out, err)
    root.procs.append(proc)
    return proc


def wait_listening(sock_path, proc, timeout=15):
    """Waits until `sock_path` accepts a connection (then closes it at once), or fails if the
    process exited first."""
    def ready():
        if not proc.alive():
            raise AssertionError("executor exited (%r): %s" % (proc.popen.returncode, proc.err()))
        try:
            if not stat.S_ISSOCK(os.stat(sock_path).st_mode):
                return False
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock_path)
            finally:
                s.close()
            return True
        except OSError:
            return False
    harness.wait_until(ready, timeout, what="executor listening on %s" % sock_path)


def skip_unless_root(test):
    if os.geteuid() != 0:
        test.skipTest("the executor runs scripts as other users and in mount namespaces: "
                      "run as root")


class ExecTestCase(harness.TestCase):
    """A TestCase with a root under /var/tmp (mode 0755), and self.ex (an Exec) built from the
    class's SCRIPTS, PROFILES and CONF_EXTRA ("{root}" in the last two is the root's path); the
    executor is started unless START is False."""

    SCRIPTS = {}
    PROFILES = None
    CONF_EXTRA = ""
    SCRIPTS_CONF = None  # the allowlist's path in the root; default <root>/etc/.../scripts.conf
    START = True

    def setUp(self):
        skip_unless_root(self)
        self.root = harness.Root(self.id().split(".")[-1][:40], parent=ROOTS_PARENT)
        self.addCleanup(self.root.cleanup)
        profiles = None
        if self.PROFILES is not None:
            profiles = {k: v.format(root=self.root.dir) for k, v in self.PROFILES.items()}
        self.ex = Exec(self.root, self.SCRIPTS, profiles,
                       self.CONF_EXTRA.format(root=self.root.dir),
                       self.root.path(self.SCRIPTS_CONF) if self.SCRIPTS_CONF else None)
        if self.START:
            self.ex.start()

    def assertReply(self, reply, exit_code, out, err):
        self.assertEqual(reply.tuple(), (exit_code, out, err))


def status_fields(text):
    """'CapEff:\\t0000000000000001' lines -> {'CapEff': '0000000000000001'}"""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def now():
    return time.monotonic()
