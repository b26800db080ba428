"""Helpers for the pairing e2e tests: a dispatcher set up in a Root, agent configs, a scripted
pairing client (the role transcript 17 gave `openssl s_client`), CSRs made with openssl, and
waiting for pairing mode to listen."""
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

FRAME = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


def write_dispatcher_conf(root, extra=""):
    etc = root.path("/etc/ctrl-exec")
    return root.write("/etc/ctrl-exec/ctrl-exec.conf",
                      "cert = %s/dispatcher.crt\nkey = %s/dispatcher.key\nca = %s/ca.crt\n"
                      "dispatcher_id = disp-%s\n%s"
                      % (etc, etc, etc, os.path.basename(root.dir)[-6:].replace("_", "x"), extra))


def setup_dispatcher(root, extra=""):
    """ctrl-exec.conf, then setup-ca and setup-ctrl-exec, as DOCKER.md's entrypoint does."""
    write_dispatcher_conf(root, extra)
    for mode in ("setup-ca", "setup-ctrl-exec"):
        r = root.run(["ced", mode])
        if r.rc != 0:
            raise AssertionError("%s failed: %r" % (mode, r))


def dispatcher_serial(root):
    """The served cert's serial as the original sends it: lowercase hex without leading zeros."""
    out = harness.sh("openssl x509 -noout -serial -in %s"
                     % root.path("/etc/ctrl-exec/dispatcher.crt")).stdout
    return out.strip().split("=", 1)[1].lower().lstrip("0") or "0"


def write_agent_conf(root, port=7443, extra=""):
    etc = root.path("/etc/ctrl-exec-agent")
    return root.write("/etc/ctrl-exec-agent/agent.conf",
                      "port = %d\ncert = %s/agent.crt\nkey = %s/agent.key\nca = %s/ca.crt\n%s"
                      % (port, etc, etc, etc, extra))


def spawn_pairing_mode(root, port, timeout=60, stdin=subprocess.DEVNULL, args=()):
    """`ced pairing-mode` in the foreground; returns once the port accepts connections."""
    proc = root.spawn(["ced", "pairing-mode", "--port", str(port), "--timeout", str(timeout)]
                      + list(args), stdin=stdin)
    harness.wait_until(lambda: proc.wait_for_log("ACTION=pairing-mode-start") and True,
                       what="pairing-mode-start")
    return proc


def tls_connect(port, timeout=10):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the agent does not verify the dispatcher at pairing
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw)


class PairClient:
    """A scripted agent: sends one request and reads the responses one at a time."""

    def __init__(self, port, body, raw=None, timeout=15):
        self.sock = tls_connect(port, timeout)
        data = raw if raw is not None else body if isinstance(body, bytes) else \
            json.dumps(body).encode()
        if raw is None:
            data = (b"POST /pair HTTP/1.0\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(data)) + data
        self.sock.sendall(data)
        self._pending = b""

    def response(self):
        buf = self._pending
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        self._pending = rest[length:]
        self.head = head.decode() + "\r\n\r\n"
        return json.loads(rest[:length].decode())

    def closed(self):
        """True when the server closes without sending anything more."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_csr(directory, cn, key="ec", digest="sha256", name="agent"):
    """A CSR PEM made with openssl: key "ec" (P-256) or "rsa:<bits>"."""
    keyopt = "-newkey ec -pkeyopt ec_paramgen_curve:P-256" if key == "ec" else "-newkey " + key
    harness.sh("openssl req -new -nodes %s -keyout %s.key -out %s.csr -subj '/CN=%s' -%s "
               "2>/dev/null" % (keyopt, name, name, cn, digest), cwd=directory)
    with open(os.path.join(directory, name + ".csr")) as f:
        return f.read()


def pairing_code(csr_pem):
    """agent-and-wire §5.3, computed independently of the code under test."""
    head = int.from_bytes(hashlib.sha256(csr_pem.encode()).digest()[:4], "big")
    return "%06d" % (head % 1000000)


def request(hostname, csr, nonce="00112233445566778899aabbccddeeff", **extra):
    body = {"hostname": hostname, "csr": csr, "nonce": nonce}
    body.update(extra)
    return body


def wait_for_queue(root, count, timeout=10):
    d = root.path("/var/lib/ctrl-exec/pairing")

    def n():
        if not os.path.isdir(d):
            return 0
        return len([f for f in os.listdir(d) if f.endswith(".json")])

    harness.wait_until(lambda: n() == count, timeout, what="%d queued requests" % count)


def mode(path):
    return os.stat(path).st_mode & 0o7777


def wait_gone(pid, timeout=10):
    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    harness.wait_until(gone, timeout, what="pid %d to exit" % pid)


def now():
    return time.time()
