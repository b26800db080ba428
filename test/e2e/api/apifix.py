"""Fixtures for the API e2e tests: a dispatcher config in a temp root, the API started on a free
loopback port, auth hooks written as small shell scripts, and raw-socket clients for what curl
cannot do (half a request, a stalled client, exact bytes).

Every response these clients receive is checked against the API's OpenAPI document
(apischema.py): a body that does not match its schema fails the test that received it."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import apischema  # noqa: E402
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


_document = []


def openapi_document():
    """The live OpenAPI document (GET /openapi-live.json), fetched once per test process from a
    ctrl-exec-api of our own (allow-all, no agents). Asking the server under test would run its
    auth hook, count in its logs and open TLS sessions to its agents; the response schemas do not
    depend on the configuration (only the hosts and script enums of requests do)."""
    if not _document:
        root = harness.Root("openapi")
        try:
            port = harness.free_port()
            write_config(root, port, api_auth_default="allow")
            start_api(root, port)
            status, body, head = harness.curl(url(port, "/openapi-live.json"), timeout=10)
            if status != 200:
                raise AssertionError("cannot fetch /openapi-live.json: %s\n%s" % (head, body))
            _document.append(json.loads(body))
        finally:
            root.cleanup()
    return _document[0]


def check(method, path, status, body):
    """Fails unless `body` matches the document's schema for this method, path and status."""
    apischema.check_response(openapi_document(), method.upper(), path, status, body)


def curl(address, method=None, data=None, **kw):
    """harness.curl, with the response checked against the OpenAPI document. The method is
    what curl sends: `method`, else POST with data and GET without."""
    status, body, head = harness.curl(address, method=method, data=data, **kw)
    if status:
        parts = urllib.parse.urlsplit(address)
        path = parts.path + ("?" + parts.query if parts.query else "")
        check(method or ("POST" if data is not None else "GET"), path, status, body)
    return status, body, head


def check_raw(request, response):
    """Checks the response bytes of a raw exchange against the request line of `request`: the
    method is its first word and the path its second ("/" when absent), as the server reads it."""
    if not response:
        return  # dropped without an answer
    head, _, body = response.partition(b"\r\n\r\n")
    words = request.split(b"\r\n", 1)[0].split()
    method = words[0].decode() if words else ""
    path = words[1].decode() if len(words) > 1 else "/"
    check(method, path, int(head.split()[1]), body.decode())


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` on a new connection, half-closes, reads until EOF. Returns the bytes (the
    response is checked against the OpenAPI document)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        response = read_all(s)
    check_raw(data, response)
    return response


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


def read_response(s, request=None):
    """Reads exactly one response (head + Content-Length body) from a socket. With `request`,
    (method, path), the response is checked against the OpenAPI document."""
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
    head, body = head.decode(), rest[:length].decode()
    if request:
        check(request[0], request[1], int(head.split()[1]), body)
    return head, body


class CheckedCurl(subprocess.Popen):
    """A background `curl -i` whose response communicate() checks against the document."""

    def __init__(self, cmd, method, path):
        super().__init__(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.method, self.path = method, path

    def communicate(self, *args, **kw):
        out, err = super().communicate(*args, **kw)
        if status_of(out):
            # Text mode has turned the CRLFs of the head into LFs.
            check(self.method, self.path, status_of(out), out.split("\n\n", 1)[1])
        return out, err


def popen_curl(port, path, *args):
    """A curl in the background (for concurrent requests), GET unless `args` hold -X <method>;
    returns the Popen."""
    cmd = ["curl", "-sS", "-i", "--max-time", "30"] + list(args) + [url(port, path)]
    method = args[args.index("-X") + 1] if "-X" in args else "GET"
    return CheckedCurl(cmd, method, path)


def status_of(curl_output):
    """The status code of `curl -i` output (0 when there is none)."""
    if not curl_output.startswith("HTTP/"):
        return 0
    return int(curl_output.split()[1])


def count_files(d):
    return len(os.listdir(d)) if os.path.isdir(d) else 0


def monotonic():
    return time.monotonic()
