"""Fixtures for the API e2e tests: a dispatcher config in a temp root, the API started on a free
loopback port, auth hooks written as small shell scripts, and raw-socket clients for what curl
cannot do (half a request, a stalled client, exact bytes)."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

CONF = "/etc/ctrl-exec/ctrl-exec.conf"


def write_config(root, port, **keys):
    """ctrl-exec.conf with the three required keys and api_bind/api_port; `keys` add to it."""
    lines = {
        "cert": root.path("/etc/ctrl-exec/dispatcher.crt"),
        "key": root.path("/etc/ctrl-exec/dispatcher.key"),
        "ca": root.path("/etc/ctrl-exec/ca.crt"),
        "api_bind": "127.0.0.1",
        "api_port": str(port),
    }
    lines.update({k: str(v) for k, v in keys.items()})
    text = "".join("%s = %s\n" % kv for kv in lines.items())
    return root.write(CONF, text, 0o640)


def write_hook(root, body, name="auth-hook"):
    """An executable /bin/sh hook in /etc/ctrl-exec; returns its path."""
    return root.write("/etc/ctrl-exec/" + name, "#!/bin/sh\n" + body + "\n", 0o755)


def blocking_hook(root, action="api"):
    """A hook that, for `action`, records that it started and waits until the test creates the
    release file; every other action is allowed at once. Returns (hook, started_dir, release)."""
    started = root.path("/tmp/started")
    os.makedirs(started, exist_ok=True)
    release = root.path("/tmp/release")
    hook = write_hook(root, (
        'if [ "$ENVEXEC_ACTION" = "%s" ]; then\n'
        '  touch "%s/$$"\n'
        '  while [ ! -e "%s" ]; do sleep 0.02; done\n'
        'fi\n'
        'exit 0') % (action, started, release))
    return hook, started, release


def start_api(root, port, extra_args=(), env=None):
    """Starts ctrl-exec-api and waits for its "listening" line."""
    proc = root.spawn(["ctrl-exec-api", "--config", root.path(CONF)] + list(extra_args), env=env)
    harness.wait_until(lambda: "listening on" in proc.out() or not proc.alive(), 10,
                       what="API startup")
    if not proc.alive():
        raise AssertionError("API did not start:\n%s%s" % (proc.out(), proc.err()))
    return proc


def url(port, path, scheme="http"):
    return "%s://127.0.0.1:%d%s" % (scheme, port, path)


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` on a new connection, half-closes, reads until EOF. Returns the bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return read_all(s)


def read_all(s):
    chunks = []
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def read_response(s):
    """Reads exactly one response (head + Content-Length body) from a socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError("connection closed before a response: %r" % buf)
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        b = s.recv(65536)
        if not b:
            raise AssertionError("connection closed inside a body")
        rest += b
    return head.decode(), rest[:length].decode()


def popen_curl(port, path, *args):
    """A curl in the background (for concurrent requests); returns the Popen."""
    cmd = ["curl", "-sS", "-i", "--max-time", "30"] + list(args) + [url(port, path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def status_of(curl_output):
    """The status code of `curl -i` output (0 when there is none)."""
    if not curl_output.startswith("HTTP/"):
        return 0
    return int(curl_output.split()[1])


def count_files(d):
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def monotonic():
    return time.monotonic()
