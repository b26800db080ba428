"""Stalled handshakes on the agent's port (issue 13, attack 2): 1,200 connections from one
address that open TCP, send the start of a ClientHello, then nothing, and come back when they
are dropped. The agent runs its default rate limiting. Its caps at accept must keep the
address to its share of handshakes (no crypto, no buffers for the rest), the rate limiter's
block must apply at accept once the stalled handshakes time out, and genuine requests from
another address must keep being answered within 5 s."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "agent"))
sys.path.insert(0, os.path.dirname(__file__))
import abuselib  # noqa: E402
import agentlib  # noqa: E402
import harness  # noqa: E402

ATTACK_SECONDS = 25
CONNECTIONS = 1200
PENDING_PER_IP = 128  # agent.conf's default max_connections_per_ip


class HandshakeFlood(agentlib.AgentTestCase):
    rate_limit_disable = False

    def setUp(self):
        super().setUp()
        abuselib.raise_nofile()
        self.agent.start()
        self.ca = os.path.join(self.agent.pki, "ca.crt")

    def probe(self, path, body):
        def fn():
            reqid = "probe%d" % time.monotonic_ns()
            data = dict(body, reqid=reqid)
            status, reply, seconds = abuselib.tls_request(
                self.agent.port, *self.agent.cert("disp"), self.ca,
                agentlib.perl_request("POST", path, json.dumps(data).encode()))
            return status == 200 and reqid.encode() in reply and seconds <= 5, seconds
        return fn

    def test_stalled_handshakes_from_one_address(self):
        proc = abuselib.Process(self.agent.proc.pid)
        probes = [("ping", self.probe("/ping", {})),
                  ("run", self.probe("/run", {"script": "noop", "args": []}))]
        abuselib.baseline(proc, probes, self)
        attacker = abuselib.Attacker("hello-stall", self.agent.port, ATTACK_SECONDS, CONNECTIONS,
                                     source="127.0.0.1", reconnect=1)
        counts, crowding, sampler = abuselib.attack_and_measure(
            self, "agent-handshake-flood", proc, attacker, probes, 8, self.agent.log, "",
            self.agent.proc.alive)
        self.assertGreater(counts["connected"] + counts["refused"], CONNECTIONS,
                           "the attack did not take place")
        # The address never held more than its share of connections (a few handshakes, the
        # rest waiting their turn, unread) ...
        self.assertLess(sampler.peak_fds, proc.base[0] + PENDING_PER_IP + 16)
        self.assertGreater(crowding.get("conn-refused/address", 0), 0, crowding)
        # ... and once its stalled handshakes had timed out, it was blocked at accept.
        self.agent.wait_log("ACTION=rate-block PEER=127.0.0.1 REASON=probe")
        self.assertGreater(crowding.get("conn-refused/blocked", 0), 0, crowding)
        self.assertNotIn("rate-block PEER=127.0.0.2", self.agent.log())


if __name__ == "__main__":
    harness.main()
