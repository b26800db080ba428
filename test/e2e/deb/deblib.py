"""Helpers for the Debian package tests: build the packages from the build tree
(conf/deb/build), and throw-away Debian roots to install them in.

A root is made from the host's own installed Debian packages, not downloaded: the dependency
closure of dpkg, adduser, init-system-helpers and the few tools the maintainer scripts use,
their files copied from the host and their entries copied from the host's dpkg database, so dpkg
inside the root knows them and checks our packages' dependencies against them. Commands run in
it with chroot (dpkg, the maintainer scripts, the installed binaries), with a clean environment
and no /run/systemd/system, as in a container or a chroot install. Building one takes a few
seconds, where debootstrap would take minutes and the network.
"""
import ctypes
import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402

BUILD_SCRIPT = os.path.join(harness.SOURCE_ROOT, "conf", "deb", "build")
BUILD_DIR = os.path.dirname(os.path.dirname(harness.BINARY))
ROOT_PACKAGES = ("dpkg", "perl-base", "adduser", "init-system-helpers", "passwd", "login", "coreutils",
                 "dash", "debianutils", "diffutils", "findutils", "grep", "sed", "tar", "gzip",
                 "libc-bin", "base-files", "base-passwd")
HOST_TOOLS = ("chroot", "dpkg-deb", "dpkg-query", "meson", "strip", "mount", "umount")
SKIPPED_TREES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/")
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "HOME": "/root", "LANG": "C.UTF-8", "CTRL_EXEC_LOG": "stderr"}
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWNS = 0x00020000
_private_mounts = False


def _private_mount_namespace():
    """Moves this test process (and so everything it starts) into a mount namespace of its own,
    so the /proc it mounts in a root goes away with it and is never seen by the host."""
    global _private_mounts
    if _private_mounts:
        return
    if _libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    _private_mounts = True


def missing_prerequisites(extra_tools=()):
    """Why these tests cannot run on this host, or None."""
    if os.geteuid() != 0:
        return "needs root (chroot, dpkg in a root, users); CI runs as root"
    if os.environ.get("CX_DYNAMIC_BUILD"):
        return "the binary under test is dynamically linked (a -Dstatic=false or sanitizer " \
               "build); the packages carry the static release build"
    for t in HOST_TOOLS + tuple(extra_tools):
        if not shutil.which(t):
            return "host tool %r not found (.ci/install-deps installs it)" % t
    if not os.path.exists(os.path.join(BUILD_DIR, "build.ninja")):
        return "no meson build directory above %s" % harness.BINARY
    installed = _host_packages()
    for p in ROOT_PACKAGES:
        if p not in installed:
            return "host package %r is not installed (.ci/install-deps installs it)" % p
    return None


def build_packages(out_dir, version=None):
    """conf/deb/build on the build tree; returns {package name: .deb path}."""
    args = [BUILD_SCRIPT, BUILD_DIR, out_dir] + ([version] if version else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError("conf/deb/build failed (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
    debs = {}
    for line in p.stdout.split():
        debs[os.path.basename(line).split("_")[0]] = line
    return debs


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "--field", deb, field], capture_output=True, text=True,
                          check=True).stdout.strip()


def compare_versions(a, op, b):
    return subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0


def in_uts(hostname):
    """A preexec_fn: a new UTS namespace whose host name is `hostname` (the agent names itself
    after its host at pairing)."""
    name = hostname.encode()

    def fn():
        if _libc.unshare(_CLONE_NEWUTS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUTS)")
        if _libc.sethostname(name, len(name)) != 0:
            raise OSError(ctypes.get_errno(), "sethostname")
    return fn


# --- the host's dpkg database --------------------------------------------------------------

def _host_packages():
    """{name: {"arch", "depends", "provides", "binary"}} for every installed host package."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f",
         "${Package}\t${Architecture}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\t"
         "${Provides}\t${binary:Package}\n"],
        capture_output=True, text=True, check=True).stdout
    pkgs = {}
    for line in out.splitlines():
        name, arch, status, deps, provides, binary = line.split("\t")
        if status.strip() != "ii":
            continue
        pkgs[name] = {"arch": arch, "depends": deps, "provides": provides, "binary": binary}
    return pkgs


def _closure(roots):
    pkgs = _host_packages()
    provided = {}
    for name, p in pkgs.items():
        for item in p["provides"].split(","):
            item = item.strip().split(" ")[0]
            if item:
                provided.setdefault(item, name)
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for clause in pkgs[name]["depends"].split(","):
            clause = clause.strip()
            if not clause:
                continue
            for alt in clause.split("|"):  # the first alternative that is installed
                dep = alt.strip().split(" ")[0].split(":")[0]
                if dep in pkgs:
                    todo.append(dep)
                    break
                if dep in provided:
                    todo.append(provided[dep])
                    break
    return sorted(seen), pkgs


def _status_paragraphs(names):
    with open("/var/lib/dpkg/status") as f:
        paragraphs = f.read().split("\n\n")
    keep = []
    for para in paragraphs:
        fields = dict(line.split(": ", 1) for line in para.splitlines()
                      if ": " in line and not line.startswith(" "))
        if fields.get("Package") in names and fields.get("Status") == "install ok installed":
            keep.append(para.strip("\n"))
    return "\n\n".join(keep) + "\n\n"


# --- a root ---------------------------------------------------------------------------------

class DebRoot:
    """A throw-away Debian root holding dpkg and what maintainer scripts need."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cx-deb-root-")
        os.chmod(self.dir, 0o755)  # its "/", which every user must be able to reach
        self.procs = []
        self._n = 0
        names, pkgs = _closure(ROOT_PACKAGES)
        self.packages = names
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            if os.path.islink("/" + top):  # merged /usr, as on the host
                target = os.readlink("/" + top)
                os.makedirs(os.path.join(self.dir, target.lstrip("/")), exist_ok=True)
                os.symlink(target, os.path.join(self.dir, top))
        for d in ("etc", "root", "tmp", "run", "var/lib/dpkg/info", "var/lib/dpkg/updates",
                  "var/lib/dpkg/triggers", "var/lib/dpkg/alternatives", "var/log", "dev", "proc"):
            os.makedirs(self.path("/" + d), exist_ok=True)
        os.chmod(self.path("/tmp"), 0o1777)
        for name in names:
            binary = pkgs[name]["binary"]
            for info in os.listdir("/var/lib/dpkg/info"):
                if info.startswith(binary + ".") or info.startswith(name + "."):
                    shutil.copy2("/var/lib/dpkg/info/" + info, self.path("/var/lib/dpkg/info/" + info))
            with open("/var/lib/dpkg/info/%s.list" % binary) as f:
                for path in f.read().splitlines():
                    self._copy_host_path(path)
        with open(self.path("/var/lib/dpkg/status"), "w") as f:
            f.write(_status_paragraphs(set(names)))
        for empty in ("available", "diversions", "statoverride"):
            open(self.path("/var/lib/dpkg/" + empty), "w").close()
        if os.path.exists("/var/lib/dpkg/arch"):
            shutil.copy2("/var/lib/dpkg/arch", self.path("/var/lib/dpkg/arch"))
        self._accounts()
        # pam-auth-update writes the common-* files at install time; no package lists them.
        for name in os.listdir("/etc/pam.d"):
            if name.startswith("common-") and not os.path.exists(self.path("/etc/pam.d/" + name)):
                shutil.copy2("/etc/pam.d/" + name, self.path("/etc/pam.d/" + name))
        for name, (major, minor) in DEVICES.items():
            os.mknod(self.path("/dev/" + name), 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        if not os.path.lexists(self.path("/bin/sh")):
            os.symlink("dash", self.path("/bin/sh"))
        # The root is a mount point of its own (the executor makes a run's mount namespace from
        # "/", as on a real system), and the binary re-executes itself through /proc/self/exe
        # (background pairing, async jobs, the executor's confinement step).
        _private_mount_namespace()
        subprocess.run(["mount", "--bind", self.dir, self.dir], check=True)
        subprocess.run(["mount", "-t", "proc", "proc", self.path("/proc")], check=True)

    def _copy_host_path(self, path):
        if path in ("/.", "/") or path.startswith(SKIPPED_TREES):
            return
        if os.path.islink(path) and os.path.dirname(path) == "/":
            return  # a merged-/usr link, made above
        if not os.path.lexists(path):
            return  # excluded or diverted on the host
        dest = self.path(path)
        if os.path.isdir(path) and not os.path.islink(path):
            os.makedirs(dest, exist_ok=True)
            return
        if os.path.lexists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(path, dest, follow_symlinks=False)

    def _accounts(self):
        """/etc/passwd and /etc/group as base-passwd's masters give them, with shadow files."""
        base = "/usr/share/base-passwd/"
        shutil.copy(base + "passwd.master", self.path("/etc/passwd"))
        shutil.copy(base + "group.master", self.path("/etc/group"))
        for src, dst, fmt in (("passwd", "shadow", "%s:*:19000:0:99999:7:::\n"),
                              ("group", "gshadow", "%s:*::\n")):
            with open(self.path("/etc/" + src)) as f, open(self.path("/etc/" + dst), "w") as out:
                for line in f:
                    if line.strip():
                        out.write(fmt % line.split(":", 1)[0])
            os.chmod(self.path("/etc/" + dst), 0o640)
        with open(self.path("/etc/shells"), "w") as f:
            f.write("/bin/sh\n/usr/bin/sh\n/bin/dash\n/usr/bin/dash\n")

    # --- inside the root ---

    def path(self, abs_path):
        return os.path.join(self.dir, abs_path.lstrip("/"))

    def read(self, abs_path):
        with open(self.path(abs_path)) as f:
            return f.read()

    def write(self, abs_path, content, mode=0o644, owner=None):
        p = self.path(abs_path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        if owner:
            self.chown(abs_path, *owner)
        return p

    def _cmd(self, args, user=None):
        spec = ["--userspec=%s:%s" % user] if user else []
        return ["chroot"] + spec + [self.dir] + list(args)

    def run(self, args, user=None, input=None, timeout=120, env=None, preexec_fn=None):
        e = dict(CHROOT_ENV)
        e.update(env or {})
        p = subprocess.run(self._cmd(args, user), input=input, capture_output=True, text=True,
                           timeout=timeout, env=e, cwd=self.dir, preexec_fn=preexec_fn,
                           stdin=None if input is not None else subprocess.DEVNULL)
        return harness.Result(p.returncode, p.stdout, p.stderr)

    def spawn(self, args, user=None, env=None, preexec_fn=None):
        """A process in the root, stopped (by PID: chroot execs it) at cleanup."""
        e = dict(CHROOT_ENV)
        e.update(env or {})
        self._n += 1
        logs = tempfile.mkdtemp(prefix="cx-deb-logs-")
        out = os.path.join(logs, "%d.out" % self._n)
        err = os.path.join(logs, "%d.err" % self._n)
        with open(out, "w") as o, open(err, "w") as r:
            popen = subprocess.Popen(self._cmd(args, user), stdin=subprocess.DEVNULL, stdout=o,
                                     stderr=r, env=e, cwd=self.dir, text=True,
                                     preexec_fn=preexec_fn)
        proc = harness.Proc(popen, out, err)
        self.procs.append((proc, logs))
        return proc

    def dpkg(self, *args):
        return self.run(["dpkg"] + list(args), timeout=300)

    def status(self, package):
        """(db:Status-Abbrev, Version) of a package in the root's dpkg database."""
        r = self.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", package])
        if r.rc != 0:
            return None, None
        abbrev, version = r.out.split("|")
        return abbrev.strip(), version

    def conffiles(self, package):
        r = self.run(["dpkg-query", "-W", "-f", "${Conffiles}", package])
        return {line.split()[0] for line in r.out.splitlines() if line.strip()}

    def passwd(self, name):
        """The root's /etc/passwd entry of `name` as a list of fields, or None."""
        return _entry(self.path("/etc/passwd"), name)

    def group(self, name):
        return _entry(self.path("/etc/group"), name)

    def uid(self, name):
        return int(self.passwd(name)[2])

    def gid(self, name):
        return int(self.group(name)[2])

    def chown(self, abs_path, user, group):
        os.chown(self.path(abs_path), self.uid(user), self.gid(group), follow_symlinks=False)

    def mode_owner(self, abs_path):
        """("0750", "root", "ctrl-exec-agent") of a path, names from the root's databases."""
        st = os.lstat(self.path(abs_path))
        names = {int(e[2]): e[0] for e in _entries(self.path("/etc/passwd"))}
        groups = {int(e[2]): e[0] for e in _entries(self.path("/etc/group"))}
        return ("%04o" % stat.S_IMODE(st.st_mode), names.get(st.st_uid, str(st.st_uid)),
                groups.get(st.st_gid, str(st.st_gid)))

    def unit_exec(self, unit, key="ExecStart"):
        """The command line of a unit's ExecStart= (its leading "+" and the like removed) and
        its User=, read from the installed unit file."""
        cmd, user = None, None
        for line in self.read("/lib/systemd/system/" + unit).splitlines():
            if line.startswith(key + "="):
                cmd = line.split("=", 1)[1].lstrip("+-@!:").split()
            elif line.startswith("User="):
                user = line.split("=", 1)[1]
        return cmd, user

    def cleanup(self):
        for proc, logs in self.procs:
            try:
                proc.stop(timeout=3)
            except Exception:
                pass
            shutil.rmtree(logs, ignore_errors=True)
        subprocess.run(["umount", "-l", self.path("/proc")], check=False)
        subprocess.run(["umount", "-l", self.dir], check=False)
        if os.path.ismount(self.path("/proc")) or os.path.ismount(self.dir):
            raise AssertionError("%s is still mounted; the root is left as it is" % self.dir)
        if os.environ.get("CX_KEEP_ROOT"):
            print("kept root:", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _entries(path):
    with open(path) as f:
        return [line.rstrip("\n").split(":") for line in f if line.strip()]


def _entry(path, name):
    for e in _entries(path):
        if e[0] == name:
            return e
    return None
