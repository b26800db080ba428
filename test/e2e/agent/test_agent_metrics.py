"""The agent's optional metrics listener (ours, docs/COMPATIBILITY.md): off by default; with
agent.conf metrics_bind, GET /metrics over plain HTTP (anything else 404) whose counters move as
the agent works; the text checked by promtool; a bad metrics_bind is a config error."""
import socket

import agentlib
from agentlib import harness

CONTENT_TYPE = "Content-Type: text/plain; version=0.0.4; charset=utf-8"


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


class Metrics(agentlib.AgentTestCase):
    def with_metrics(self, extra=""):
        self.mport = harness.free_port()
        self.agent.write_conf("metrics_bind = 127.0.0.1:%d\n%s" % (self.mport, extra))
        self.agent.start()
        self.agent.wait_log("ACTION=metrics-start BIND=127.0.0.1 PORT=%d" % self.mport)

    def scrape(self):
        status, body, head = harness.curl("http://127.0.0.1:%d/metrics" % self.mport, timeout=10)
        self.assertEqual(status, 200, head + body)
        self.assertIn(CONTENT_TYPE, head)
        return body, harness.parse_metrics(body)

    def test_off_by_default(self):
        self.agent.start()
        self.agent.post("/ping", {"reqid": "1"})
        self.assertNotIn("metrics-start", self.agent.log())
        # Nothing but the agent port is open: the agent's own port serves no /metrics either.
        status, body, _ = self.agent.get("/metrics")
        self.assertEqual(status, 404, body)

    def test_only_get_metrics(self):
        self.with_metrics()
        base = "http://127.0.0.1:%d" % self.mport
        for method, path in (("GET", "/"), ("GET", "/metrics/"), ("POST", "/metrics"),
                             ("GET", "/metrics?x"), ("GET", "/ping")):
            status, body, _ = harness.curl(base + path, method=method, timeout=10)
            self.assertEqual(status, 404, (method, path, body))
        # Plain HTTP only: TLS to it fails, and the agent port still wants TLS.
        status, _, _ = harness.curl("https://127.0.0.1:%d/metrics" % self.mport, timeout=5)
        self.assertEqual(status, 0)
        self.assertEqual(self.agent.post("/ping", {"reqid": "1"})[0], 200)

    def test_counters_move(self):
        self.with_metrics("script_timeout = 1\n")
        text, before = self.scrape()
        self.assertEqual(sample(before, "ctrl_exec_agent_connections_accepted_total"), 0)
        self.assertEqual(sample(before, "ctrl_exec_build_info", version="0.12.3"), 1)

        self.assertEqual(self.agent.post("/ping", {"reqid": "1"})[0], 200)
        self.assertEqual(self.agent.run("noop")[1]["exit"], 0)
        self.assertEqual(self.agent.run("fail")[1]["exit"], 3)
        self.assertIs(self.agent.run("sleeper", ["5"])[1].get("timed_out"), True)
        self.assertEqual(self.agent.run("nope")[1]["exit"], -1)  # not allowlisted: refused
        self.assertEqual(self.agent.get("/nope")[0], 404)
        self.assertEqual(self.agent.post("/ping", {}, who="stranger")[0], 403)  # the map gate
        raw = self.agent.raw(b"GET /ping HTTP/1.0\r\n" + b"X: y\r\n" * 40 + b"\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.0 431"), raw)

        text, after = self.scrape()
        requests = "ctrl_exec_agent_requests_total"
        self.assertEqual(sample(after, requests, route="POST /ping", code="200"), 1)
        self.assertEqual(sample(after, requests, route="POST /ping", code="403"), 1)
        self.assertEqual(sample(after, requests, route="POST /run", code="200"), 4)
        self.assertEqual(sample(after, requests, route="unmatched", code="404"), 1)
        self.assertEqual(sample(after, requests, route="malformed", code="431"), 1)
        runs = "ctrl_exec_agent_runs_total"
        self.assertEqual(sample(after, runs, exit="0"), 1)
        self.assertEqual(sample(after, runs, exit="nonzero"), 1)
        self.assertEqual(sample(after, runs, exit="timeout"), 1)
        self.assertEqual(sample(after, runs, exit="error"), 0)
        refusals = "ctrl_exec_agent_refusals_total"
        self.assertEqual(sample(after, refusals, reason="deny"), 1)
        self.assertEqual(sample(after, refusals, reason="serial-reject"), 1)
        self.assertEqual(sample(after, "ctrl_exec_agent_connections_accepted_total"), 8)
        self.assertEqual(sample(after, "ctrl_exec_agent_requests_in_progress"), 0)
        harness.promtool_check_metrics(self, text)

    def test_rate_limit_blocks_and_refusals(self):
        self.agent.rate_limit_disable = False
        self.with_metrics("rate_limit_volume = 3/60/300\nrate_limit_probe = 0/600/3600\n")
        self.assertEqual([self.agent.post("/ping", {}, who="stranger")[0] for _ in range(4)],
                         [403, 403, 403, 0])
        self.agent.wait_log("ACTION=rate-block PEER=127.0.0.1 REASON=volume")
        for _ in range(2):  # TLS without a client certificate: a failed handshake each
            self.assertEqual(self.agent.post("/ping", {}, who=None)[0], 0)
        text, samples = self.scrape()
        self.assertEqual(sample(samples, "ctrl_exec_agent_rate_limit_blocks_total",
                                reason="volume"), 1)
        refusals = "ctrl_exec_agent_refusals_total"
        self.assertEqual(sample(samples, refusals, reason="serial-reject"), 3)
        self.assertGreaterEqual(sample(samples, refusals, reason="rate-limit"), 1)
        harness.promtool_check_metrics(self, text)

    def test_a_bad_metrics_bind_is_a_config_error(self):
        for value in ("localhost:9443", "127.0.0.1:0", "127.0.0.1:x"):
            self.agent.write_conf("metrics_bind = %s\n" % value)
            proc = self.agent.start(wait=False)
            proc.wait(10)
            self.assertEqual(proc.popen.returncode, 78, proc.err())
            self.assertIn("Config key 'metrics_bind' must be [address:]port", proc.err())
            self.agent.proc = None

    def test_a_metrics_port_in_use_stops_the_start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            self.agent.write_conf("metrics_bind = 127.0.0.1:%d\n" % s.getsockname()[1])
            proc = self.agent.start(wait=False)
            proc.wait(10)
            self.assertEqual(proc.popen.returncode, 1, proc.err())
            self.assertIn("cannot listen for metrics_bind", proc.err())
            self.agent.proc = None


if __name__ == "__main__":
    harness.main()
