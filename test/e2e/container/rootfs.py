"""Images and containers without a container engine, for the container e2e tests.

An image is one stage of a Dockerfile in container/, interpreted into a temp directory:
- `FROM alpine:3.21` starts from a fixture root: Debian's busybox-static as /bin/sh and the
  userland (Alpine's userland is busybox too), root and nobody in /etc/passwd, and the
  stand-ins for apk, addgroup and adduser in fixtures/ (the apk stand-in installs nothing and
  records the packages). `FROM scratch` starts from an empty directory.
- RUN runs chrooted in that root (busybox sh for the shell form), in private namespaces.
- COPY reads the build context (the repository), or, for `--from=build`, the artifacts of the
  build stage. That stage (Debian, meson) is not run here: its one artifact, /out/ctrl-exec,
  is the binary under test stripped by the same `strip -o` line, which the test checks is
  still in the Dockerfile.
- ENV, EXPOSE, ENTRYPOINT and CMD are recorded.

A container is the image root chrooted in fresh mount, UTS, IPC and PID namespaces: its first
process is PID 1 and has its own /proc, as under Docker. The network is either a namespace
that the test made (Network) or a private one with nothing in it. `exec` enters the
namespaces of the running container, as `docker exec` does; `run` starts a one-off container
on the same root, as `docker run --rm` with the same volumes does.
"""
import json
import os
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402

CONTEXT = harness.SOURCE_ROOT
CONTAINER_DIR = os.path.join(CONTEXT, "container")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
DOCKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_ARTIFACT_LINE = "strip -o /out/ctrl-exec /build/applets/ctrl-exec"
HOST_TOOLS = ("unshare", "nsenter", "chroot", "ip")
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def tool(name):
    return shutil.which(name, path=DOCKER_PATH) or shutil.which(name)


def is_static_elf(path):
    """True for an ELF file without a program interpreter (PT_INTERP), i.e. a static binary."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return False
        endian = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack(endian + "Q", head[0x20:0x28])
        phentsize, phnum = struct.unpack(endian + "HH", head[0x36:0x3a])
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(endian + "I", f.read(4))
            if p_type == 3:
                return False
    return True


def busybox_path():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p) and is_static_elf(os.path.realpath(p)):
            return os.path.realpath(p)
    return None


def missing_prerequisites():
    """Why these tests cannot run on this host, or None."""
    if os.geteuid() != 0:
        return "needs root (chroot, mount, PID and network namespaces); CI runs as root"
    for t in HOST_TOOLS:
        if not tool(t):
            return "host tool %r not found" % t
    if not busybox_path():
        return "Debian's busybox-static (a static /bin/busybox) is not installed"
    if os.environ.get("CX_DYNAMIC_BUILD"):
        return "the binary under test is dynamically linked (a -Dstatic=false or sanitizer " \
               "build) and cannot run in an image root; the static build runs these tests"
    return None


def applet_gaps(probes):
    """The probes (argv lists for the binary) that answer "not built yet". They run in a
    throw-away CTRL_EXEC_ROOT and, as root, in an empty network namespace: a built command
    must not reach anything real while it is being probed."""
    gaps = []
    isolate = [tool("unshare"), "--net"] if os.geteuid() == 0 and tool("unshare") else []
    scratch = tempfile.mkdtemp(prefix="cx-e2e-probe-")
    try:
        env = dict(os.environ, CTRL_EXEC_ROOT=scratch, CTRL_EXEC_LOG="stderr")
        for argv in probes:
            try:
                p = subprocess.run(isolate + [harness.BINARY] + argv, capture_output=True, text=True,
                                   timeout=10, env=env, stdin=subprocess.DEVNULL, cwd=scratch)
            except subprocess.TimeoutExpired:
                continue  # it did something for a while: it is built
            if "not built yet" in p.stderr:
                gaps.append(" ".join(argv))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return gaps


# --- Dockerfile -------------------------------------------------------------------------

class Stage:
    def __init__(self, base, name, line):
        self.base, self.name, self.line, self.instructions = base, name, line, []

    def text(self):
        return "\n".join(args for _, args, _ in self.instructions)


def parse_dockerfile(path):
    """The stages of a Dockerfile: each with its base, its alias and (op, args, line) tuples."""
    stages, pending, start = [], "", 0
    with open(path) as f:
        lines = f.read().split("\n")
    for n, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if not logical:
            continue
        op, _, args = logical.partition(" ")
        op, args = op.upper(), args.strip()
        if op == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, start))
        elif not stages:
            raise AssertionError("%s:%d: %s before FROM" % (path, start, op))
        else:
            stages[-1].instructions.append((op, args, start))
    return stages


def exec_form(args):
    """The JSON array of an exec-form instruction, or None for the shell form."""
    if args.startswith("["):
        value = json.loads(args)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise AssertionError("malformed exec form: %s" % args)
    return None


# --- Images -----------------------------------------------------------------------------

class Image:
    def __init__(self, root, dockerfile, stage):
        self.root, self.dockerfile, self.stage = root, dockerfile, stage
        self.env, self.expose = {}, []
        self.entrypoint, self.cmd = [], []
        self.entrypoint_form = self.cmd_form = None

    def path(self, abs_path):
        return os.path.join(self.root, abs_path.lstrip("/"))

    def read(self, abs_path):
        with open(self.path(abs_path)) as f:
            return f.read()

    def write(self, abs_path, content, mode=0o644):
        p = self.path(abs_path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        return p

    def exists(self, abs_path):
        return os.path.lexists(self.path(abs_path))

    def packages(self):
        p = self.path("/lib/apk/world.fixture")
        return read_text(p).split() if os.path.exists(p) else []

    def passwd(self, name):
        """The /etc/passwd entry of `name` as a list of fields, or None."""
        return _db_entry(self.path("/etc/passwd"), name)

    def group(self, name):
        return _db_entry(self.path("/etc/group"), name)


def _db_entry(path, name):
    if not os.path.exists(path):
        return None
    for line in read_text(path).splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def alpine_base(root):
    """The fixture standing in for alpine:3.21; see the module docstring."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin",
              "usr/share", "etc", "lib", "home", "opt", "mnt", "media", "srv", "var/log",
              "var/lib", "var/cache", "var/spool", "var/empty", "run", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for d, mode in (("root", 0o700), ("tmp", 0o1777), ("var/tmp", 0o1777)):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, d), mode)
    os.symlink("../run", os.path.join(root, "var/run"))
    shutil.copy2(busybox_path(), os.path.join(root, "bin/busybox"))
    applets = subprocess.run([busybox_path(), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        link = os.path.join(root, "bin", a)
        if a != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    for name, dest in (("apk", "sbin/apk"), ("addgroup", "usr/sbin/addgroup"),
                       ("adduser", "usr/sbin/adduser")):
        shutil.copy2(os.path.join(FIXTURES, name), os.path.join(root, dest))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:root\nnobody:x:65534:\n")
    os.symlink("/bin/nologin", os.path.join(root, "sbin/nologin"))


def build_artifacts(stages, workdir):
    """The build stage's outputs, emulated: {path in the build stage: file on this host}."""
    build = [s for s in stages if s.name == "build"]
    if not build or BUILD_ARTIFACT_LINE not in build[0].text():
        raise AssertionError("the build stage no longer makes /out/ctrl-exec with %r; update "
                             "the emulation in rootfs.py with it" % BUILD_ARTIFACT_LINE)
    out = os.path.join(workdir, "ctrl-exec.stripped")
    if not os.path.exists(out):
        strip = tool("strip")
        if strip:
            subprocess.run([strip, "-o", out, harness.BINARY], check=True)
        else:
            shutil.copy2(harness.BINARY, out)
    return {"/out/ctrl-exec": out}


def build_image(dockerfile, target=None, workdir=None):
    """Assembles the final (or `target`) stage of container/<dockerfile> in a temp directory."""
    path = os.path.join(CONTAINER_DIR, dockerfile)
    stages = parse_dockerfile(path)
    stage = stages[-1] if target is None else next(s for s in stages if s.name == target)
    workdir = workdir or tempfile.mkdtemp(prefix="cx-e2e-image-")
    root = os.path.join(workdir, "rootfs-%s-%s" % (dockerfile, target or "final"))
    os.makedirs(root)
    image = Image(root, dockerfile, stage)
    if stage.base == "alpine:3.21":
        alpine_base(root)
    elif stage.base != "scratch":
        raise AssertionError("%s: unsupported base image %s for the test" % (dockerfile, stage.base))
    artifacts = build_artifacts(stages, workdir)
    for op, args, line in stage.instructions:
        where = "%s:%d" % (dockerfile, line)
        if op == "RUN":
            argv = exec_form(args) or ["/bin/sh", "-c", args]
            env = dict(image.env)
            env.setdefault("PATH", DOCKER_PATH)
            r = run_isolated(root, argv, env, hostname="buildkitsandbox")
            if r.rc != 0:
                raise AssertionError("%s: RUN failed (%d): %s\n%s%s" % (where, r.rc, args, r.out, r.err))
        elif op == "COPY":
            _copy(image, args, artifacts, where)
        elif op == "ENV":
            key, sep, value = args.partition("=")
            if not sep:
                key, _, value = args.partition(" ")
            image.env[key.strip()] = shlex.split(value)[0] if value.strip() else ""
        elif op == "EXPOSE":
            image.expose += args.split()
        elif op == "ENTRYPOINT":
            image.entrypoint_form = "exec" if exec_form(args) else "shell"
            image.entrypoint = exec_form(args) or ["/bin/sh", "-c", args]
        elif op == "CMD":
            image.cmd_form = "exec" if exec_form(args) else "shell"
            image.cmd = exec_form(args) or ["/bin/sh", "-c", args]
        elif op in ("LABEL", "ARG"):
            pass
        else:
            raise AssertionError("%s: %s is not emulated by the test" % (where, op))
    return image


def _copy(image, args, artifacts, where):
    words = args.split()
    source_of = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            source_of = flag[len("--from="):]
        else:
            raise AssertionError("%s: COPY %s is not emulated by the test" % (where, flag))
    *sources, dest = words
    into_dir = dest.endswith("/") or len(sources) > 1
    for src in sources:
        if source_of == "build":
            if src not in artifacts:
                raise AssertionError("%s: the test does not emulate build-stage file %s" % (where, src))
            host = artifacts[src]
        elif source_of is None:
            host = os.path.join(CONTEXT, src)
        else:
            raise AssertionError("%s: COPY --from=%s is not emulated" % (where, source_of))
        target = image.path(os.path.join(dest, os.path.basename(src)) if into_dir else dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(host):
            shutil.copytree(host, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(host, target)


# --- Running a root ------------------------------------------------------------------------

def prepare_runtime(root, hostname=None, hosts=(), fresh_dev=False):
    """What the container runtime adds to a root: /dev nodes, /proc, and the files of
    /etc/hosts, /etc/hostname and /etc/resolv.conf (bind mounts under Docker). With
    `fresh_dev`, /dev starts empty as on each container start (no stale /dev/log socket)."""
    for d in ("dev", "proc", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    if fresh_dev:
        dev = os.path.join(root, "dev")
        for name in os.listdir(dev):
            p = os.path.join(dev, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
    for name, (major, minor) in DEVICES.items():
        p = os.path.join(root, "dev", name)
        if not os.path.exists(p):
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(p, 0o666)
    if hostname:
        with open(os.path.join(root, "etc/hostname"), "w") as f:
            f.write(hostname + "\n")
        with open(os.path.join(root, "etc/hosts"), "w") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            for ip, name in hosts:
                f.write("%s\t%s\n" % (ip, name))
        with open(os.path.join(root, "etc/resolv.conf"), "w") as f:
            f.write("# no DNS server in the test network: names come from /etc/hosts\n")


def launch_argv(root, hostname, argv, netns=None, drop_caps=()):
    """argv that runs `argv` chrooted in `root` as PID 1 of fresh namespaces. `drop_caps`
    (names such as "sys_admin") are taken out of its capability sets, as a container started
    without them (docker run without --cap-add) lacks them."""
    cmd = []
    if netns:
        cmd += [tool("ip"), "netns", "exec", netns]
    cmd += [tool("unshare"), "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
            "--mount-proc=" + os.path.join(root, "proc")]
    if not netns:
        cmd += ["--net"]
    # The root is bound onto itself first, so that inside it "/" is a mount point as in a real
    # container (busybox df, for one, looks it up in /proc/mounts).
    # The capabilities go last: mount and hostname still need CAP_SYS_ADMIN.
    drop = ""
    if drop_caps:
        caps = ",".join("-" + c for c in drop_caps)
        drop = "%s --bounding-set=%s --inh-caps=%s " % (tool("setpriv"), caps, caps)
    cmd += ["/bin/sh", "-c", 'root=$1 name=$2; shift 2; %s mount --rbind "$root" "$root" && '
            '%s hostname "$name" && exec %s%s "$root" "$@"'
            % (busybox_path(), busybox_path(), drop, tool("chroot")), "cx-container", root,
            hostname] + list(argv)
    return cmd


def run_isolated(root, argv, env, hostname="container", netns=None, input=None, timeout=60):
    prepare_runtime(root)
    p = subprocess.run(launch_argv(root, hostname, argv, netns), env=env, input=input,
                       capture_output=True, text=True, timeout=timeout)
    return harness.Result(p.returncode, p.stdout, p.stderr)


class Running:
    """A process tree started in a container; the popen is unshare (or nsenter)."""

    def __init__(self, popen, out_path, err_path):
        self.popen, self.out_path, self.err_path = popen, out_path, err_path

    def out(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def err(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.popen.poll() is None

    def status(self, field, pid=None):
        """A field of /proc/<pid>/status (default: the container's PID 1), e.g. "Uid"."""
        with open("/proc/%d/status" % (pid or self.pid1())) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == field:
                    return value.split()
        raise AssertionError("no %s in /proc/%s/status" % (field, pid or self.pid1()))

    def children(self, pid=None):
        """Host PIDs of the children of `pid` (default: the container's PID 1)."""
        pid = pid or self.pid1()
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def pid1(self, timeout=5):
        """The host PID of the container's PID 1 (unshare's only child); for an exec, the
        process that nsenter started."""
        path = "/proc/%d/task/%d/children" % (self.popen.pid, self.popen.pid)

        def child():
            try:
                with open(path) as f:
                    kids = f.read().split()
                return int(kids[0]) if kids else None
            except OSError:
                return None
        return harness.wait_until(child, timeout, what="PID 1 of the container")

    def wait(self, timeout=30):
        return self.popen.wait(timeout=timeout)

    def wait_for(self, needle, timeout=20, stream="out"):
        """Waits until `needle` is in the process's stdout (or stderr); fails at the deadline
        or as soon as the process has exited without printing it."""
        get = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.alive()
            if needle in get():
                return True
            if exited or time.monotonic() > deadline:
                raise AssertionError("%s waiting for %r in the %s of a container process\n"
                                     "out: %s\nerr: %s" % (
                                         "exited" if exited else "timed out after %ss" % timeout,
                                         needle, stream, self.out()[-3000:], self.err()[-3000:]))
            time.sleep(0.05)

    def kill(self):
        if self.alive():
            self.popen.kill()  # --kill-child takes PID 1, and so the whole PID namespace, along
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Container:
    """A container on an image root. See the module docstring."""

    def __init__(self, image, name, logdir, hostname=None, netns=None, env=None, hosts=()):
        self.image, self.name, self.logdir, self.netns = image, name, logdir, netns
        self.hostname = hostname or name
        self.env = {"PATH": DOCKER_PATH, "HOSTNAME": self.hostname, "HOME": "/root"}
        self.env.update(image.env)
        self.env.update(env or {})
        self.hosts = list(hosts)
        self.current = None
        self.starts = 0
        self._n = 0
        self.processes = []

    def _files(self, what):
        self._n += 1
        base = os.path.join(self.logdir, "%s-%02d-%s" % (self.name, self._n, what))
        return base + ".out", base + ".err"

    def _spawn(self, cmd, env, stdin, what):
        out, err = self._files(what)
        with open(out, "w") as fo, open(err, "w") as fe:
            popen = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=fo, stderr=fe, text=True)
        running = Running(popen, out, err)
        self.processes.append(running)
        return running

    def start(self, env=None, cmd=None, entrypoint=None, drop_caps=()):
        """`docker start`: the entrypoint (and CMD) as PID 1, in the background; `drop_caps`
        as in launch_argv."""
        if self.current and self.current.alive():
            raise AssertionError("%s is already running" % self.name)
        prepare_runtime(self.image.root, self.hostname, self.hosts, fresh_dev=True)
        e = dict(self.env)
        e.update(env or {})
        argv = (self.image.entrypoint if entrypoint is None else entrypoint) + \
            (self.image.cmd if cmd is None else cmd)
        self.starts += 1
        self.current = self._spawn(launch_argv(self.image.root, self.hostname, argv, self.netns,
                                               drop_caps),
                                   e, subprocess.DEVNULL, "start%d" % self.starts)
        return self.current

    def running(self):
        return self.current is not None and self.current.alive()

    def spawn_exec(self, argv, env=None, stdin=subprocess.DEVNULL):
        """`docker exec` in the background when running; else a one-off container."""
        e = dict(self.env)
        e.update(env or {})
        if self.running():
            cmd = [tool("nsenter"), "--target", str(self.current.pid1()), "--mount", "--uts",
                   "--ipc", "--net", "--pid", "--root", "--wd", "--"] + list(argv)
        else:
            # One-off containers share the root (and so /dev) with each other here.
            prepare_runtime(self.image.root, self.hostname, self.hosts)
            cmd = launch_argv(self.image.root, self.hostname, argv, self.netns)
        return self._spawn(cmd, e, stdin, "exec-" + os.path.basename(argv[0]))

    def exec(self, argv, env=None, timeout=60):
        """`docker exec` to completion: a harness.Result."""
        r = self.spawn_exec(argv, env)
        try:
            rc = r.wait(timeout)
        except subprocess.TimeoutExpired:
            r.kill()
            raise AssertionError("%s: %s did not finish in %ss\n%s%s"
                                 % (self.name, argv, timeout, r.out(), r.err()))
        return harness.Result(rc, r.out(), r.err())

    def stop(self, timeout=10):
        """`docker stop`: SIGTERM to PID 1, SIGKILL after `timeout`. Returns
        (exit status, whether SIGTERM alone was enough)."""
        if not self.running():
            return (self.current.popen.returncode if self.current else None), True
        try:
            os.kill(self.current.pid1(), signal.SIGTERM)
        except (ProcessLookupError, AssertionError):
            pass
        try:
            return self.current.wait(timeout), True
        except subprocess.TimeoutExpired:
            self.current.kill()
            return self.current.popen.returncode, False

    def cleanup(self):
        for r in self.processes:
            r.kill()
            if r.popen.stdin:
                r.popen.stdin.close()


class Network:
    """Network namespaces joined by one veth pair: a two-container compose network."""

    def __init__(self, names, subnet="10.213.7"):
        if len(names) != 2:
            raise ValueError("Network joins exactly two containers")
        tag = "%d" % (os.getpid() % 100000)
        self.netns = {n: "cx-%s-%s" % (tag, n) for n in names}
        self.ip = {n: "%s.%d" % (subnet, i + 1) for i, n in enumerate(names)}
        self.created = []
        ip = tool("ip")
        veth = ["cx%sv%d" % (tag, i) for i in range(2)]
        try:
            for n in names:
                self._ip(ip, "netns", "add", self.netns[n])
                self.created.append(self.netns[n])
            self._ip(ip, "link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
            for i, n in enumerate(names):
                ns = self.netns[n]
                self._ip(ip, "link", "set", veth[i], "netns", ns)
                self._ip(ip, "-n", ns, "addr", "add", self.ip[n] + "/24", "dev", veth[i])
                self._ip(ip, "-n", ns, "link", "set", veth[i], "up")
                self._ip(ip, "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.cleanup()
            raise

    @staticmethod
    def _ip(*argv):
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError("%s failed: %s" % (" ".join(argv), p.stderr))

    def hosts(self):
        return [(self.ip[n], n) for n in self.ip]

    def cleanup(self):
        for ns in self.created:
            subprocess.run([tool("ip"), "netns", "del", ns], capture_output=True)
        self.created = []


def payload_bytes(image, entrypoint):
    """Bytes our image adds: the binary, its applet links and the entrypoint (if any)."""
    total, parts = 0, []
    bindir = image.path("/usr/local/bin")
    for name in sorted(os.listdir(bindir)):
        st = os.lstat(os.path.join(bindir, name))
        total += st.st_size
        parts.append(name)
    if entrypoint:
        total += os.lstat(image.path(entrypoint)).st_size
    return total, parts


def keep_or_remove(path):
    if os.environ.get("CX_KEEP_ROOT"):
        print("kept:", path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def wait_port(netns, port, host="127.0.0.1", timeout=20):
    """Waits until something accepts TCP connections on host:port inside `netns`."""
    code = ("import socket,sys\ntry:\n socket.create_connection((%r,%d),timeout=1).close()\n"
            "except OSError:\n sys.exit(1)\n" % (host, port))

    def probe():
        cmd = [tool("ip"), "netns", "exec", netns, sys.executable, "-c", code]
        return subprocess.run(cmd, capture_output=True).returncode == 0
    return harness.wait_until(probe, timeout, interval=0.2,
                              what="port %d in network namespace %s" % (port, netns))


def settle(seconds):
    """A bounded pause used only where the test must show that something does NOT happen."""
    time.sleep(seconds)


def compose_service(compose_file, service):
    """environment, volumes and hostname of one service of a compose file in container/.

    A reader for the plain block style our compose files use (no anchors, no flow style), so
    that the tests need no YAML module: the containers get exactly the file's settings."""
    out = {"environment": {}, "volumes": [], "hostname": None}
    section, in_service = None, False
    for raw in read_text(os.path.join(CONTAINER_DIR, compose_file)).splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 2:
            in_service = text == service + ":"
            section = None
        elif in_service and indent == 4:
            key, _, value = text.partition(":")
            section = key
            if key == "hostname":
                out["hostname"] = value.strip()
        elif in_service and indent == 6 and section == "environment":
            key, _, value = text.partition(":")
            out["environment"][key.strip()] = value.strip().strip('"')
        elif in_service and indent == 6 and section == "volumes" and text.startswith("- "):
            source, target = text[2:].split(":")[:2]
            out["volumes"].append((source, target))
    if not out["volumes"]:
        raise AssertionError("service %s not found in %s" % (service, compose_file))
    return out
