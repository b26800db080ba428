"""GET /metrics on ctrl-exec-api (ours, docs/COMPATIBILITY.md): the Prometheus text behind the
pre-route auth gate, api_metrics_open on a loopback bind only, counters that move as requests
are made and agents answer, and the text checked by promtool."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
import apifix  # noqa: E402
import displib  # noqa: E402
from apifix import harness  # noqa: E402

CONTENT_TYPE = "Content-Type: text/plain; version=0.0.4; charset=utf-8"


def requests(samples, route, code):
    return samples.get(("ctrl_exec_api_requests_total",
                        (("code", str(code)), ("route", route))), 0)


class Metrics(harness.TestCase):
    def start(self, **keys):
        self.port = harness.free_port()
        apifix.write_config(self.root, self.port, **keys)
        self.api = apifix.start_api(self.root, self.port)

    def get(self, path):
        return apifix.curl(apifix.url(self.port, path), timeout=10)

    def scrape(self):
        status, body, head = self.get("/metrics")
        self.assertEqual(status, 200, head + body)
        self.assertIn(CONTENT_TYPE, head)
        return body, harness.parse_metrics(body)

    def test_behind_the_auth_gate_by_default(self):
        self.start()  # no hook, api_auth_default deny
        status, body, _ = self.get("/metrics")
        self.assertEqual(status, 403, body)
        # A hook decides for /metrics as for every route, with action api.
        hook = apifix.write_hook(self.root, '[ "$ENVEXEC_ACTION" = api ] && exit 0; exit 1')
        self.api.stop()
        self.start(auth_hook=hook)
        text, samples = self.scrape()
        self.assertEqual(requests(samples, "GET /metrics", 200), 0)  # counted once answered
        text, samples = self.scrape()
        self.assertEqual(requests(samples, "GET /metrics", 200), 1)
        harness.promtool_check_metrics(self, text)

    def test_open_on_loopback_only_for_metrics(self):
        self.start(api_metrics_open="yes")
        text, samples = self.scrape()
        # Every other route still passes the gate (and is refused here).
        status, _, _ = self.get("/health")
        self.assertEqual(status, 403)
        text, samples = self.scrape()
        self.assertEqual(requests(samples, "GET /health", 403), 1)
        self.assertEqual(requests(samples, "GET /metrics", 200), 1)
        harness.promtool_check_metrics(self, text)

    def test_open_is_ignored_off_loopback(self):
        self.start(api_metrics_open="yes", api_bind="0.0.0.0")
        self.api.wait_for_log("KEY=api_metrics_open")
        status, body, _ = self.get("/metrics")
        self.assertEqual(status, 403, body)

    def test_a_bad_open_value_is_a_warning(self):
        self.start(api_metrics_open="maybe")
        self.api.wait_for_log("KEY=api_metrics_open")
        status, _, _ = self.get("/metrics")
        self.assertEqual(status, 403)

    def test_counters_move(self):
        self.start(api_auth_default="allow")
        for _ in range(2):
            self.assertEqual(self.get("/health")[0], 200)
        self.assertEqual(self.get("/nope")[0], 404)
        self.assertEqual(self.get("/status/abc")[0], 404)
        raw = apifix.raw_exchange(self.port, b"GET /health HTTP/1.0\r\n" + b"X: y\r\n" * 40
                                  + b"\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.0 431"), raw)
        text, samples = self.scrape()
        self.assertEqual(requests(samples, "GET /health", 200), 2)
        self.assertEqual(requests(samples, "unmatched", 404), 1)
        self.assertEqual(requests(samples, "GET /status/{reqid}", 404), 1)
        self.assertEqual(requests(samples, "malformed", 431), 1)
        self.assertEqual(samples[("ctrl_exec_build_info", (("version", "0.12.3"),))], 1)
        self.assertEqual(samples[("ctrl_exec_api_registry_agents", ())], 0)
        self.assertEqual(samples[("ctrl_exec_api_fanouts_in_flight", ())], 0)
        self.assertEqual(samples[("ctrl_exec_api_agent_rtt_seconds_count", ())], 0)
        # The route is documented, with a text body.
        status, spec, _ = self.get("/openapi.json")
        self.assertIn('"/metrics"', spec)
        self.assertIn('"text/plain; version=0.0.4; charset=utf-8"', spec)
        harness.promtool_check_metrics(self, text)


class FleetMetrics(harness.TestCase):
    def test_agent_exchanges_are_counted(self):
        port = harness.free_port()
        fleet = displib.Fleet(self, n=2, dispatcher_extra="api_bind = 127.0.0.1\napi_port = %d\n"
                              "read_timeout = 5\napi_auth_default = allow\n" % port)
        apifix.start_api(self.root, port)
        names = fleet.names()

        def call(method, path, body=None):
            import json
            return apifix.curl(apifix.url(port, path), method=method,
                               data=None if body is None else json.dumps(body), timeout=60)

        for _ in range(2):
            self.assertEqual(call("POST", "/ping", {"hosts": names})[0], 200)
        st, body, _ = call("POST", "/run", {"hosts": names, "script": "echo-args", "args": []})
        self.assertEqual(st, 200, body)
        st, text, head = call("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertIn(CONTENT_TYPE, head)
        samples = harness.parse_metrics(text)
        results = "ctrl_exec_api_host_results_total"
        self.assertEqual(samples[(results, (("op", "ping"), ("state", "ok")))], 4)
        self.assertEqual(samples[(results, (("op", "run"), ("state", "ok")))], 2)
        # Each ping is followed by a capabilities call to the agents that answered.
        self.assertEqual(samples[(results, (("op", "capabilities"), ("state", "ok")))], 4)
        exchanges = samples[("ctrl_exec_api_agent_rtt_seconds_count", ())]
        self.assertEqual(exchanges, 10)
        self.assertEqual(samples[("ctrl_exec_api_agent_rtt_seconds_bucket", (("le", "+Inf"),))],
                         exchanges)
        full = samples[("ctrl_exec_api_tls_handshakes_total", (("mode", "full"),))]
        resumed = samples[("ctrl_exec_api_tls_handshakes_total", (("mode", "resumed"),))]
        self.assertEqual(full + resumed, exchanges)
        self.assertGreaterEqual(full, 2)
        self.assertGreaterEqual(resumed, 1)
        self.assertEqual(samples[("ctrl_exec_api_registry_agents", ())], 2)
        self.assertEqual(samples[("ctrl_exec_api_run_records", ())], 1)
        self.assertEqual(samples[("ctrl_exec_api_fanouts_in_flight", ())], 0)
        self.assertEqual(requests(samples, "POST /ping", 200), 2)
        self.assertEqual(requests(samples, "POST /run", 200), 1)
        harness.promtool_check_metrics(self, text)


if __name__ == "__main__":
    harness.main()
