"""Slow clients on the API (issue 13, attack 3): 400 plain-HTTP connections from one address
that send their request a byte every few seconds and come back when dropped. The API's caps at
accept and its head deadline must keep them from holding its connections, and /health and
/run (on a real paired agent) from another address must keep being answered within 5 s; its
descriptors and memory must come back near their baseline afterwards."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "api"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "dispatcher"))
sys.path.insert(0, os.path.dirname(__file__))
import abuselib  # noqa: E402
import apifix  # noqa: E402
import displib  # noqa: E402
import harness  # noqa: E402

ATTACK_SECONDS = 20
CONNECTIONS = 400


class ApiSlowloris(harness.TestCase):
    def setUp(self):
        super().setUp()
        abuselib.raise_nofile()
        self.port = harness.free_port()
        self.fleet = displib.Fleet(self, n=1, dispatcher_extra=(
            "api_bind = 127.0.0.1\napi_port = %d\napi_auth_default = allow\nread_timeout = 5\n"
            % self.port))
        self.api = apifix.start_api(self.root, self.port)
        self.host = self.fleet.names()[0]

    def health(self):
        status, body, seconds = abuselib.http_request(self.port, "GET", "/health")
        return status == 200 and seconds <= 5, seconds

    def run_noop(self):
        status, body, seconds = abuselib.http_request(
            self.port, "POST", "/run", {"hosts": [self.host], "script": "noop"})
        ok = status == 200 and seconds <= 5
        if ok:
            result = json.loads(body)["results"][0]
            ok = result.get("exit") == 0 and result.get("stdout") == "ok\n"
        return ok, seconds

    def test_slow_http_clients_from_one_address(self):
        proc = abuselib.Process(self.api.pid)
        probes = [("health", self.health), ("run", self.run_noop)]
        abuselib.baseline(proc, probes, self)
        attacker = abuselib.Attacker("http-slow", self.port, ATTACK_SECONDS, CONNECTIONS,
                                     source="127.0.0.1", interval=3, reconnect=1)
        counts, crowding, _ = abuselib.attack_and_measure(
            self, "api-slowloris", proc, attacker, probes, 6, self.api.err, "api-",
            self.api.alive)
        self.assertGreater(counts["connected"] + counts["refused"], CONNECTIONS,
                           "the attack did not take place")
        # The address kept to its share, and the head deadline dropped what it held.
        self.assertGreater(crowding.get("conn-refused/address", 0), 0, crowding)
        self.assertGreater(crowding.get("request-timeout/head", 0), 0, crowding)
        self.assertNotIn("api-overload", self.api.err())


if __name__ == "__main__":
    harness.main()
