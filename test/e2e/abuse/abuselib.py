"""Bounded denial-of-service attacks on loopback, and what the tests measure while they run.

The attacker runs as a separate process (this file, run as a script), with asyncio, so that its
hundreds of connections never compete with the test's probes for the interpreter. It binds its
connections to a source address of its own (the whole of 127.0.0.0/8 is loopback), so that the
genuine probes come from another one. When the server drops a connection, the attacker opens
another after `--reconnect` seconds, keeping up the pressure. At the end it prints one JSON line
with its counts.

Modes:
  tls-slow    TLS handshake with a client certificate, then a request one byte every
              `--interval` seconds (slowloris, agent-and-wire §3.1 port);
  hello-stall TCP, the start of a ClientHello, then nothing;
  http-slow   plain HTTP, a request one byte every `--interval` seconds (the API).
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

# The first bytes of a TLS 1.2 ClientHello record (length 512), and no more.
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 16

SLOW_TLS_REQUEST = (b"POST /run HTTP/1.1\r\nHost: agent:7443\r\nUser-Agent: slow\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n" + b"{" * 64)
SLOW_HTTP_REQUEST = (b"POST /run HTTP/1.1\r\nHost: api\r\nUser-Agent: slow\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n" + b"{" * 64)


def raise_nofile():
    """Lifts the soft limit on open files to the hard one (hundreds of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the attacker process -------------------------------------------------------------------------

class Counts:
    def __init__(self):
        self.connected = 0    # TCP connections (and handshakes, with TLS) that got through
        self.refused = 0      # closed or reset before or during the handshake
        self.dropped = 0      # closed by the server while we were still sending
        self.answered = 0     # the server answered (a 403, say) while we were still sending
        self.peak_open = 0
        self.open = 0


async def hold(reader, writer, payload, interval, deadline, counts):
    """Sends `payload` one byte every `interval` s until the server closes or answers."""
    counts.open += 1
    counts.peak_open = max(counts.peak_open, counts.open)
    try:
        i = 0
        while time.monotonic() < deadline:
            if payload and i < len(payload):
                writer.write(payload[i:i + 1])
                i += 1
            try:
                data = await asyncio.wait_for(reader.read(4096), interval)
            except asyncio.TimeoutError:
                continue
            if data:
                counts.answered += 1
            else:
                counts.dropped += 1
            return
    except (ConnectionError, ssl.SSLError, OSError):
        counts.dropped += 1
    finally:
        counts.open -= 1
        writer.transport.abort()


async def one(args, counts, deadline, ctx):
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", args.port, ssl=ctx, local_addr=(args.source, 0),
                server_hostname="" if ctx else None), 15)
        except (ConnectionError, ssl.SSLError, OSError, asyncio.TimeoutError):
            counts.refused += 1
            await asyncio.sleep(args.reconnect)
            continue
        counts.connected += 1
        if args.mode == "hello-stall":
            writer.write(PARTIAL_HELLO)
            await hold(reader, writer, b"", args.interval, deadline, counts)
        elif args.mode == "tls-slow":
            await hold(reader, writer, SLOW_TLS_REQUEST, args.interval, deadline, counts)
        else:
            await hold(reader, writer, SLOW_HTTP_REQUEST, args.interval, deadline, counts)
        await asyncio.sleep(args.reconnect)


async def attack(args):
    ctx = None
    if args.mode == "tls-slow":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(args.cert, args.key)
    counts = Counts()
    deadline = time.monotonic() + args.duration
    tasks = []
    for _ in range(args.connections):
        tasks.append(asyncio.ensure_future(one(args, counts, deadline, ctx)))
        await asyncio.sleep(0.002)  # a burst, but not one the kernel's backlog drops
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts


def attacker_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["tls-slow", "hello-stall", "http-slow"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.1")
    p.add_argument("--connections", type=int, default=300)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--interval", type=float, default=3)
    p.add_argument("--reconnect", type=float, default=1)
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args(argv)
    raise_nofile()
    counts = asyncio.run(attack(args))
    print(json.dumps({k: v for k, v in vars(counts).items() if k != "open"}), flush=True)


# --- the test's side ------------------------------------------------------------------------------

class Attacker:
    """The attacker process, started from a test and stopped by PID."""

    def __init__(self, mode, port, duration, connections, source="127.0.0.1", interval=3,
                 reconnect=1, cert=None, key=None):
        cmd = [sys.executable, os.path.abspath(__file__), mode, "--port", str(port),
               "--source", source, "--connections", str(connections), "--duration",
               str(duration), "--interval", str(interval), "--reconnect", str(reconnect)]
        if cert:
            cmd += ["--cert", cert, "--key", key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.counts = None

    def running(self):
        return self.proc.poll() is None

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if not lines:
            raise AssertionError("attacker printed no counts:\n%s%s" % (out, err))
        self.counts = json.loads(lines[-1])
        return self.counts

    def kill(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Process:
    """Figures of a server process from /proc: open descriptors, resident memory, CPU time."""

    def __init__(self, pid):
        self.pid = pid

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Samples a Process's descriptors and memory until stopped (the peaks during an attack)."""

    def __init__(self, process):
        self.process = process
        self.peak_fds = 0
        self.peak_rss_kb = 0

    def sample(self):
        self.peak_fds = max(self.peak_fds, self.process.fds())
        self.peak_rss_kb = max(self.peak_rss_kb, self.process.rss_kb())


def tls_request(port, cert, key, ca, data, source="127.0.0.2", timeout=5.0):
    """One request over TLS from `source`; returns (status, body, seconds). Status 0: no answer
    (refused, dropped or too slow)."""
    t0 = time.monotonic()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    out = b""
    try:
        raw.bind((source, 0))
        raw.connect(("127.0.0.1", port))
        with ctx.wrap_socket(raw) as s:
            s.sendall(data)
            while time.monotonic() - t0 < timeout:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()
    elapsed = time.monotonic() - t0
    head, _, body = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/") or elapsed > timeout:
        return 0, b"", elapsed
    return int(head.split()[1]), body, elapsed


def http_request(port, method, path, body=None, source="127.0.0.2", timeout=5.0):
    """One plain HTTP request from `source`; returns (status, body, seconds), status 0 when
    there was no answer in time."""
    import http.client
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                       source_address=(source, 0))
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read()
        c.close()
        status = r.status
    except (OSError, http.client.HTTPException):
        status, text = 0, b""
    elapsed = time.monotonic() - t0
    return (status if elapsed <= timeout else 0), text, elapsed


class Probes:
    """Genuine requests during an attack, their outcomes and latencies."""

    def __init__(self):
        self.results = []  # (name, ok, seconds)

    def add(self, name, ok, seconds):
        self.results.append((name, ok, seconds))

    def failures(self):
        return [r for r in self.results if not r[1]]

    def latencies(self):
        return sorted(r[2] for r in self.results)

    def summary(self):
        lat = self.latencies()
        if not lat:
            return "probes=0"
        return "probes=%d failed=%d latency_ms median=%.0f max=%.0f" % (
            len(lat), len(self.failures()), statistics.median(lat) * 1000, lat[-1] * 1000)


def run_probes(probes, attacker, every, sampler, probe_fns, min_probes):
    """While the attacker runs, calls each of `probe_fns` in turn every `every` seconds (and
    samples the server between them); at least `min_probes` calls."""
    n = 0
    next_at = time.monotonic()
    while attacker.running() or n < min_probes:
        sampler.sample()
        if time.monotonic() >= next_at:
            name, fn = probe_fns[n % len(probe_fns)]
            ok, seconds = fn()
            probes.add(name, ok, seconds)
            n += 1
            next_at = time.monotonic() + every
        time.sleep(0.1)


def settles(predicate, timeout):
    """Whether `predicate` holds within `timeout` seconds (polled; no failure by itself)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def crowding_counts(log_text, prefix):
    """Sums the COUNT of the once-a-second crowding lines (`<prefix>conn-refused`,
    `<prefix>conn-shed`, `<prefix>request-timeout`) by action and reason."""
    sums = {}
    for line in log_text.splitlines():
        for action in ("conn-refused", "conn-shed", "request-timeout"):
            tag = "ACTION=%s%s " % (prefix, action)
            if tag not in line:
                continue
            fields = dict(f.split("=", 1) for f in line.split(tag, 1)[1].split() if "=" in f)
            key = "%s/%s" % (action, fields.get("REASON", ""))
            sums[key] = sums.get(key, 0) + int(fields.get("COUNT", "0"))
    return sums


def figure(name, **values):
    """One line the test prints for the README's Reliability table."""
    text = " ".join("%s=%s" % kv for kv in values.items())
    print("\nFIGURE %s %s" % (name, text), flush=True)


if __name__ == "__main__":
    attacker_main(sys.argv[1:])


def attack_and_measure(tc, name, proc, attacker, probes, min_probes, log_text, prefix, alive):
    """The common body of every abuse test: run `attacker` (already started) against `proc`
    while the genuine `probes` run every 2.5 s, print the FIGURE line, and assert that every
    probe was answered in time, that descriptors and memory came back near their baseline, and
    that the server is still alive. `log_text` returns the server's log, `prefix` selects its
    crowding counters, `alive` says whether it still runs. Returns (attacker counts, crowding,
    the sampler with the peaks).
    The baseline is taken by the caller before the attacker starts: pass it as proc.base."""
    base_fds, base_rss, base_cpu = proc.base
    tc.addCleanup(attacker.kill)
    sampler = Sampler(proc)
    results = Probes()
    time.sleep(2)  # let the attack build up first
    run_probes(results, attacker, 2.5, sampler, probes, min_probes=min_probes)
    counts = attacker.finish()
    cpu = proc.cpu_s() - base_cpu
    # What the attacker held is dropped by the deadlines (10 s each at most), and freed
    # buffers go back to the system once the crowd has left.
    fds_back = settles(lambda: proc.fds() <= base_fds + 2, 25)
    rss_back = settles(lambda: proc.rss_kb() < base_rss + 2048, 5)
    after_fds, after_rss = proc.fds(), proc.rss_kb()
    crowding = crowding_counts(log_text(), prefix)
    figure(name, probes=len(results.results), failed=len(results.failures()),
           median_ms="%.0f" % (statistics.median(results.latencies()) * 1000),
           max_ms="%.0f" % (results.latencies()[-1] * 1000),
           attacker=json.dumps(counts, separators=(",", ":")),
           crowding=json.dumps(crowding, separators=(",", ":")),
           fds="%d/%d/%d" % (base_fds, sampler.peak_fds, after_fds),
           rss_kb="%d/%d/%d" % (base_rss, sampler.peak_rss_kb, after_rss),
           cpu_s="%.1f" % cpu)
    tc.assertEqual(results.failures(), [], results.summary())
    tc.assertTrue(fds_back, "descriptors did not come back near their baseline")
    # Under a sanitizer the allocator quarantines what is freed and never returns it, so RSS
    # measures ASan, not us; the release build (CI's main part) makes this check.
    if not os.environ.get("CX_SANITIZED"):
        tc.assertTrue(rss_back, "memory did not come back near its baseline")
    tc.assertTrue(alive())
    return counts, crowding, sampler


def baseline(proc, probes, tc):
    """Warms up with one round of probes (each must pass), then records proc.base."""
    for _, fn in probes:
        tc.assertTrue(fn()[0])
    proc.base = (proc.fds(), proc.rss_kb(), proc.cpu_s())
