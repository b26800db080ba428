"""`ced run` and `ced ping` by tags, in batches (issue 14), across six real, tagged agents.

Selection: --tags with one pair and two (AND), the union with explicit hosts (explicit ones
first, in the given order, then the tag matches by registry name, each host once), a selector
that matches nothing, an invalid one, and tags changed on an agent reaching the registry through
a ping. Batches: their order and size (N and N%), --batch-wait seen in the AT= times of the
ACTION=batch log lines, --max-failures (K and K%) stopping the rollout with the rest skipped,
sync, async and ping, the usage errors, the per-batch auth hook call with ENVEXEC_TAGS, and the
500-host limit. The shared fleet is tagfleet.TAGS:

    a1 web prod   a2 web staging   a3 web prod   a4 db prod   a5 db staging   a6 cache prod
    (and fleet=test on all six)
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402
import pairlib  # noqa: E402  (on the path through displib)
import tagfleet  # noqa: E402
from tagfleet import TAGS  # noqa: E402


def no_match(selector):
    return ("Error: no agent matches tags: %s\nOnly registered agents can be addressed - run "
            "'ctrl-exec-dispatcher list-agents --tags %s' to see them.\n" % (selector, selector))


class TagsAndBatches(tagfleet.RolloutChecks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tf = tagfleet.TaggedFleet(tagfleet.ClassScope(cls))

    def setUp(self):
        # Every test starts from the fixture's tags, whatever an earlier one left.
        for i, tags in TAGS.items():
            self.assertEqual(self.tf.registry_tags(self.tf.names(i)[0]), tags)

    # --- helpers ---

    def n(self, *indexes):
        return self.tf.names(*indexes)

    def ced(self, *args):
        return self.tf.ced(*args)

    def ced_json(self, *args):
        return self.tf.ced_json(*args)

    def dispatches(self, r):
        """(HOSTS as a list, REQID) of each ACTION=dispatch line of a run."""
        return [(f["HOSTS"].split(","), f["REQID"])
                for f in tagfleet.log_fields(r.err, "dispatch")]

    def assert_contacted(self, r, action, names):
        """Exactly these agents were contacted (one ACTION=<run|ping> line each)."""
        lines = tagfleet.log_fields(r.err, action)
        ports = sorted(int(f["TARGET"].rsplit(":", 1)[1]) for f in lines)
        self.assertEqual(ports, sorted(self.tf.host[n].port for n in names), r.err)

    # --- selection ---

    def test_tags_are_empty_after_pairing(self):
        # The premise of the refresh: pairing stores no tags; the fixture wrote them since.
        self.assertEqual(self.tf.tags_after_pairing, {n: {} for n in self.n()})

    def test_select_by_one_tag(self):
        r, doc = self.ced_json("run", "--tags", "role=web", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(doc), ["ok", "results"])  # no batches without --batch
        self.assertEqual(sorted(x["host"] for x in doc["results"]), self.n(1, 2, 3))
        for x in doc["results"]:
            self.assertEqual((x["exit"], x["stdout"]), (0, "ok\n"), x)
        self.assertEqual([h for h, _ in self.dispatches(r)], [self.n(1, 2, 3)])
        self.assert_contacted(r, "run", self.n(1, 2, 3))
        self.assertEqual(tagfleet.log_fields(r.err, "batch"), [])

        r, doc = self.ced_json("ping", "--tags", "role=db")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(doc), ["ok", "results"])
        self.assertEqual(sorted(x["host"] for x in doc["results"]), self.n(4, 5))
        self.assertEqual({x["status"] for x in doc["results"]}, {"ok"})
        self.assert_contacted(r, "ping", self.n(4, 5))

        r = self.ced("run", "--tags", "role=cache", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([l.split()[1] for l in r.out.splitlines() if l.startswith("==> ")],
                         self.n(6))
        self.assertNotIn("=== batch", r.out)

    def test_select_by_two_tags_is_and(self):
        r, doc = self.ced_json("run", "--tags", "role=web,env=prod", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([h for h, _ in self.dispatches(r)], [self.n(1, 3)])
        self.assertEqual(sorted(x["host"] for x in doc["results"]), self.n(1, 3))
        # The pairs in the other order select the same; so do spaces around them.
        r, doc = self.ced_json("run", "--tags", "env=prod,role=db", "noop")
        self.assertEqual([h for h, _ in self.dispatches(r)], [self.n(4)])
        r, doc = self.ced_json("ping", "--tags", "env = staging , role = db")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([x["host"] for x in doc["results"]], self.n(5))

    def test_union_with_explicit_hosts(self):
        # Explicit hosts first, as given; then the tag matches by name; a1 only once.
        a1, a2, a3, a5 = self.n(1, 2, 3, 5)
        r, doc = self.ced_json("run", a5, a1, "--tags", "role=web", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([h for h, _ in self.dispatches(r)], [[a5, a1, a2, a3]])
        self.assertEqual(sorted(x["host"] for x in doc["results"]), sorted([a5, a1, a2, a3]))
        self.assert_contacted(r, "run", [a5, a1, a2, a3])
        # Batches of one show the order.
        r, doc = self.ced_json("run", a3, a5, "--tags", "role=web", "--batch", "1", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [[a3], [a5], [a1], [a2]], ["done"] * 4, [0] * 4, False)
        # The same for ping, and an explicit host with a port override.
        r, doc = self.ced_json("ping", "%s:%d" % (a5, self.tf.host[a5].port),
                               "--tags", "role=web,env=prod", "--batch", "1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([b["hosts"] for b in doc["batches"]], [[a5], [a1], [a3]])

    def test_a_tag_that_matches_nothing(self):
        a1 = self.n(1)[0]
        for args in (["run", "--tags", "role=nosuch", "noop"],
                     ["run", a1, "--tags", "role=nosuch", "noop"],
                     ["run", "--tags", "role=nosuch", "--batch", "1", "noop"],
                     ["--json", "run", a1, "--tags", "role=nosuch", "noop"],
                     ["ping", "--tags", "role=nosuch"],
                     ["ping", a1, "--tags", "role=nosuch"]):
            with self.subTest(args=args):
                r = self.ced(*args)
                self.assertEqual(r.rc, 2, r)
                self.assertEqual(displib.without_logs(r.err), no_match("role=nosuch"))
                self.assertEqual(r.out, "")
                self.assertEqual(self.dispatches(r), [])
                self.assert_contacted(r, "run", [])
                self.assert_contacted(r, "ping", [])
        # The pairs must all match the same agent: each alone matches some, together none.
        r = self.ced("run", "--tags", "role=db,env=nosuch", "noop")
        self.assertEqual(r.rc, 2, r)
        self.assertEqual(displib.without_logs(r.err), no_match("role=db,env=nosuch"))
        r = self.ced("run", "--tags", "role=cache,env=staging", "noop")
        self.assertEqual((r.rc, displib.without_logs(r.err)),
                         (2, no_match("role=cache,env=staging")))

    def test_an_invalid_filter(self):
        for value, problem in (("x", "invalid tag filter 'x' (expected key=value)"),
                               ("role=web,x", "invalid tag filter 'x' (expected key=value)"),
                               ("=web", "invalid tag filter '=web' (expected key=value)"),
                               (",", "empty tag filter (expected key=value[,key=value...])")):
            for mode in (["run", "--tags", value, "noop"], ["ping", "--tags", value]):
                with self.subTest(args=mode):
                    r = self.ced(*mode)
                    self.assertEqual(r.rc, 2, r)
                    self.assertEqual(displib.without_logs(r.err),
                                     "Invalid --tags filter: %s\n" % problem)
                    self.assertEqual(r.out, "")
                    self.assert_contacted(r, "run", [])
                    self.assert_contacted(r, "ping", [])

    def test_changed_tags_reach_the_registry_through_ping(self):
        a5, a6 = self.n(5, 6)
        self.addCleanup(self.restore_tags, 5, 6)
        # SIGHUP: the agent serves its new tags; the registry still has the old ones.
        new = {"fleet": "test", "role": "cache", "env": "dev"}
        self.tf.set_agent_tags(6, new)
        r = self.ced("run", "--tags", "env=dev", "noop")
        self.assertEqual(r.rc, 2, r)
        r = self.ced("ping", a6)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.tf.registry_tags(a6), new)
        r, doc = self.ced_json("run", "--tags", "env=dev", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([x["host"] for x in doc["results"]], [a6])
        # A restart, and a ping by tags (by the tags the registry has until then), batched.
        newer = {"fleet": "test", "role": "queue", "tier": "2"}
        self.tf.set_agent_tags(6, newer, how="restart")
        r, doc = self.ced_json("ping", "--tags", "env=dev", "--batch", "1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([x["status"] for x in doc["results"]], ["ok"])
        self.assertEqual(self.tf.registry_tags(a6), newer)
        r = self.ced("run", "--tags", "env=dev", "noop")
        self.assertEqual((r.rc, displib.without_logs(r.err)), (2, no_match("env=dev")))
        r, doc = self.ced_json("run", "--tags", "role=queue,tier=2", "noop")
        self.assertEqual([x["host"] for x in doc["results"]], [a6])
        # A ping by a tag all share refreshes all; a host that did not answer keeps its tags.
        self.tf.set_agent_tags(5, {"fleet": "test", "role": "db", "env": "gone"})
        self.tf.stopped(self, 5)
        self.tf.set_agent_tags(6, TAGS[6], how="restart")
        r, doc = self.ced_json("ping", "--tags", "fleet=test")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(displib.by_host(doc["results"])[a5]["state"], "unreachable")
        self.assertEqual(self.tf.registry_tags(a5), TAGS[5])
        self.assertEqual(self.tf.registry_tags(a6), TAGS[6])
        for i in (1, 2, 3, 4):
            self.assertEqual(self.tf.registry_tags(self.n(i)[0]), TAGS[i])

    def restore_tags(self, *indexes):
        """The fixture's tags, in the agents' configs (restarted if running) and the registry."""
        for i in indexes:
            a = self.tf.agent(i)
            a.write_conf(tagfleet.tags_section(TAGS[i]))
            if a.proc and a.proc.alive():
                a.stop()
                a.start()
            self.tf.set_registry_tags(a.name, TAGS[i])

    # --- batches ---

    def test_batches_of_n(self):
        a = self.n()
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "noop")
        self.assertEqual(r.rc, 0, r)
        got = self.assert_rollout(r.err, doc, [a[0:2], a[2:4], a[4:6]], ["done"] * 3, [0] * 3,
                                  False)
        # Each batch is a dispatch of its own: its reqid, its hosts, its locks.
        self.assertEqual(self.dispatches(r), [(b["hosts"], b["reqid"]) for b in got])
        self.assert_contacted(r, "run", a)
        self.assertEqual(len(tagfleet.log_fields(r.err, "lock-acquire")), 6, r.err)
        self.assertEqual([sorted(f["HOSTS"].split(","))
                          for f in tagfleet.log_fields(r.err, "lock-release")],
                         [sorted(b["hosts"]) for b in got])
        for x in doc["results"]:
            self.assertEqual((x["exit"], x["stdout"]), (0, "ok\n"), x)

        # Explicit hosts alone can be batched too; the last batch takes what is left.
        r, doc = self.ced_json("run", *a, "--batch", "4", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [a[0:4], a[4:6]], ["done"] * 2, [0, 0], False)
        # A batch as large as the selection or larger: one batch.
        r, doc = self.ced_json("run", "--tags", "role=web", "--batch", "500", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [a[0:3]], ["done"], [0], False)

        # Human output: a header before each batch's blocks.
        r = self.ced("run", "--tags", "fleet=test", "--batch", "4", "noop")
        self.assertEqual(r.rc, 0, r)
        lines = [l for l in r.out.splitlines() if l.startswith(("=== ", "==> "))]
        self.assertEqual(lines[0], "=== batch 1 of 2 (4 hosts) ===")
        self.assertEqual(lines[5], "=== batch 2 of 2 (2 hosts) ===")
        self.assertEqual(len(lines), 8, r.out)
        self.assertEqual(sorted(l.split()[1] for l in lines[1:5]), a[0:4])
        self.assertEqual(sorted(l.split()[1] for l in lines[6:8]), a[4:6])
        for l in lines[1:5] + lines[6:8]:
            self.assertRegex(l, r"^==> a\d\.fleet\.test  \[OK  exit:0  \d+ms  req:[0-9a-f]{16}\]$")

    def test_batches_of_a_percentage(self):
        a = self.n()
        # ceil(17% of 6) = 2; ceil(10% of 6) = 1; 50% = 3; 100% = 6.
        for pct, sizes in (("17%", [2, 2, 2]), ("10%", [1] * 6), ("50%", [3, 3]),
                           ("100%", [6]), ("34%", [3, 3])):
            with self.subTest(batch=pct):
                r, doc = self.ced_json("ping", "--tags", "fleet=test", "--batch", pct)
                self.assertEqual(r.rc, 0, r)
                expected, at = [], 0
                for s in sizes:
                    expected.append(a[at:at + s])
                    at += s
                self.assert_rollout(r.err, doc, expected, ["done"] * len(sizes), [0] * len(sizes),
                                    False)
                for x in doc["results"]:
                    self.assertEqual(x["status"], "ok", x)
        # At least one host per batch: 1% of 3 is one.
        r, doc = self.ced_json("run", "--tags", "role=web", "--batch", "1%", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [[x] for x in a[0:3]], ["done"] * 3, [0] * 3, False)

    def test_batch_wait(self):
        r, doc = self.ced_json("run", "--tags", "role=web", "--batch", "1", "--batch-wait",
                               "1.2", "noop")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [[x] for x in self.n(1, 2, 3)], ["done"] * 3, [0] * 3,
                            False)
        self.assert_waited(r.err, doc, 1.2, 3)
        r, doc = self.ced_json("ping", "--tags", "role=db", "--batch", "50%", "--batch-wait",
                               "0.5")
        self.assertEqual(r.rc, 0, r)
        self.assert_waited(r.err, doc, 0.5, 2)

    def test_max_failures_stops_the_rollout(self):
        a = self.n()
        b3 = [a[0:2], a[2:4], a[4:6]]
        self.tf.failing(self, 2, 4)  # one failure in batch 1, one in batch 2
        # One failure tolerated: batch 2 makes two, batch 3 is skipped.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "--max-failures",
                               "1", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, b3, ["done", "done", "skipped"], [1, 1, 0], True)
        self.assert_contacted(r, "run", a[0:4])
        res = displib.by_host(doc["results"])
        self.assertEqual((res[a[1]]["exit"], res[a[1]]["stdout"]), (3, "flaky failed\n"))
        self.assertEqual((res[a[0]]["exit"], res[a[2]]["exit"]), (0, 0))
        self.assertEqual(len(self.dispatches(r)), 2)
        # --max-failures 0: the first failing batch stops it.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "--max-failures",
                               "0", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, b3, ["done", "skipped", "skipped"], [1, 0, 0], True)
        self.assert_contacted(r, "run", a[0:2])
        # Without --max-failures every batch runs; the failures still make the exit 1.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, b3, ["done"] * 3, [1, 1, 0], False)
        # K%: floor(34% of 6) = 2 tolerated, no stop; floor(16% of 6) = 0, stop at batch 1.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "--max-failures",
                               "34%", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, b3, ["done"] * 3, [1, 1, 0], False)
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "--max-failures",
                               "16%", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, b3, ["done", "skipped", "skipped"], [1, 0, 0], True)
        # Exactly as many failures as tolerated: no stop.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "2", "--max-failures",
                               "2", "flaky")
        self.assert_rollout(r.err, doc, b3, ["done"] * 3, [1, 1, 0], False)
        self.assertEqual(r.rc, 1, r)

    def test_a_stopped_rollout_in_human_output(self):
        a = self.n()
        self.tf.failing(self, 1)
        r = self.ced("run", "--tags", "fleet=test", "--batch", "2", "--max-failures", "0",
                     "flaky")
        self.assertEqual(r.rc, 1, r)
        lines = r.out.splitlines()
        self.assertEqual(lines[0], "=== batch 1 of 3 (2 hosts) ===", r.out)
        for host in a[2:]:
            self.assertIn("==> %s  [SKIPPED]" % host, lines)
            self.assertEqual([l for l in lines if l.startswith("==> %s  " % host)],
                             ["==> %s  [SKIPPED]" % host])
        self.assertIn("==> %s  [FAIL  exit:3  " % a[0], r.out)
        # The skipped hosts come after the batch that ran.
        first_skip = min(lines.index("==> %s  [SKIPPED]" % h) for h in a[2:])
        self.assertGreater(first_skip, max(i for i, l in enumerate(lines)
                                           if l.startswith("==> %s  [" % a[1])))

    def test_a_failure_in_the_last_batch(self):
        self.tf.failing(self, 6)
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "3", "--max-failures",
                               "0", "flaky")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual([b["state"] for b in doc["batches"]], ["done", "done"])
        self.assertEqual([b["failed"] for b in doc["batches"]], [0, 1])
        self.assertNotIn("skipped", [x.get("state") for x in doc["results"]])

    def test_max_failures_of_ping_and_async_runs(self):
        a = self.n()
        self.tf.stopped(self, 2)
        # A ping fails when its status is not ok.
        r, doc = self.ced_json("ping", "--tags", "fleet=test", "--batch", "2",
                               "--max-failures", "0")
        self.assertEqual(r.rc, 1, r)
        self.assert_rollout(r.err, doc, [a[0:2], a[2:4], a[4:6]], ["done", "skipped", "skipped"],
                            [1, 0, 0], True)
        self.assertEqual(displib.by_host(doc["results"])[a[1]]["state"], "unreachable")
        # Without --max-failures a batched ping exits 0 whatever the hosts said, as a ping does.
        r, doc = self.ced_json("ping", "--tags", "fleet=test", "--batch", "3")
        self.assertEqual(r.rc, 0, r)
        self.assert_rollout(r.err, doc, [a[0:3], a[3:6]], ["done", "done"], [1, 0], False)
        # An async run fails when a host did not accept it.
        r, doc = self.ced_json("run", "--tags", "fleet=test", "--batch", "3", "--max-failures",
                               "0", "--async", "noop")
        self.assertEqual(r.rc, 1, r)
        got = self.assert_rollout(r.err, doc, [a[0:3], a[3:6]], ["done", "skipped"], [1, 0], True)
        status = {x["host"]: x.get("status") for x in doc["results"][:3]}
        self.assertEqual(status[a[0]], "accepted", doc)
        self.assertEqual(status[a[2]], "accepted", doc)
        self.assertNotEqual(status[a[1]], "accepted", doc)
        rec = json.loads(self.tf.disp.read("/var/lib/ctrl-exec/runs/%s.json" % got[0]["reqid"]))
        self.assertEqual(sorted(rec["hosts"]), a[0:3])

    def test_async_batches_each_have_a_run_record(self):
        a = self.n()
        r, doc = self.ced_json("run", "--tags", "role=web", "--batch", "2", "--async",
                               "sleeper", "--", "0")
        self.assertEqual(r.rc, 0, r)
        got = self.assert_rollout(r.err, doc, [a[0:2], a[2:3]], ["done", "done"], [0, 0], False)
        self.assertEqual({x["status"] for x in doc["results"]}, {"accepted"})
        for b in got:
            rec = json.loads(self.tf.disp.read("/var/lib/ctrl-exec/runs/%s.json" % b["reqid"]))
            self.assertEqual(sorted(rec["hosts"]), sorted(b["hosts"]))
            w, wdoc = self.ced_json("wait", b["reqid"], "--timeout", "60")
            self.assertEqual(w.rc, 0, w)
            self.assertEqual(sorted(wdoc["hosts"]), sorted(b["hosts"]))

    def test_usage_errors(self):
        a1 = self.n(1)[0]
        cases = [
            ["run", "--tags", "role=web", "--batch-wait", "1", "noop"],
            ["run", a1, "--max-failures", "1", "noop"],
            ["ping", "--tags", "role=web", "--batch-wait", "1"],
            ["ping", a1, "--max-failures", "0"],
            ["run", a1, "--batch", "0", "noop"],
            ["run", a1, "--batch", "0%", "noop"],
            ["run", a1, "--batch", "101%", "noop"],
            ["run", a1, "--batch", "x", "noop"],
            ["run", a1, "--batch", "-1", "noop"],
            ["run", a1, "--batch", "1", "--batch-wait", "-1", "noop"],
            ["run", a1, "--batch", "1", "--batch-wait", "3601", "noop"],
            ["run", a1, "--batch", "1", "--batch-wait", "soon", "noop"],
            ["run", a1, "--batch", "1", "--max-failures", "-1", "noop"],
            ["run", a1, "--batch", "1", "--max-failures", "x", "noop"],
            ["run", a1, "--batch", "1", "--max-failures", "101%", "noop"],
            ["ping", a1, "--batch", "0"],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = self.ced(*args)
                self.assertEqual(r.rc, 2, r)
                err = displib.without_logs(r.err)
                self.assertTrue(err.strip(), r)
                # Refused as a bad value, not as an option the dispatcher does not know.
                self.assertNotIn("unknown option", err)
                self.assertEqual(r.out, "")
                self.assert_contacted(r, "run", [])
                self.assert_contacted(r, "ping", [])
        # A batch over the limit of one dispatch.
        for args in (["run", a1, "--batch", "501", "noop"], ["ping", a1, "--batch", "501"]):
            with self.subTest(args=args):
                r = self.ced(*args)
                self.assertEqual(r.rc, 2, r)
                self.assertIn("too many hosts (max 500)", displib.without_logs(r.err))
                self.assert_contacted(r, "run", [])
                self.assert_contacted(r, "ping", [])

    # --- the auth hook ---

    def test_the_hook_is_asked_once_per_batch(self):
        a1, a3, a5 = self.n(1, 3, 5)
        self.tf.clear_hook_calls()
        r, doc = self.ced_json("run", a5, "--tags", "env=prod,role=web", "--batch", "2",
                               "echo-args", "--", "x")
        self.assertEqual(r.rc, 0, r)
        got = self.assert_rollout(r.err, doc, [[a5, a1], [a3]], ["done", "done"], [0, 0], False)
        calls = self.tf.hook_calls("run")
        self.assertEqual(len(calls), 2, calls)
        for call, b in zip(calls, got):
            self.assertEqual(call["ENVEXEC_HOSTS"], ",".join(b["hosts"]))
            self.assertEqual(call["ENVEXEC_TAGS"], "env=prod,role=web")  # as given
            self.assertEqual(call["ENVEXEC_SCRIPT"], "echo-args")
            self.assertEqual(call["ENVEXEC_ARGS_JSON"], '["x"]')
            self.assertEqual(call["stdin"]["hosts"], b["hosts"])
            self.assertEqual(call["stdin"]["tags"], {"env": "prod", "role": "web"})
        # Ping too, by tags alone.
        self.tf.clear_hook_calls()
        r = self.ced("ping", "--tags", "role=db")
        self.assertEqual(r.rc, 0, r)
        calls = self.tf.hook_calls("ping")
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual((calls[0]["ENVEXEC_HOSTS"], calls[0]["ENVEXEC_TAGS"]),
                         (",".join(self.n(4, 5)), "role=db"))
        self.assertEqual(calls[0]["stdin"]["tags"], {"role": "db"})
        # Without a selector: no tags (ENVEXEC_TAGS empty, no "tags" in the JSON).
        self.tf.clear_hook_calls()
        r = self.ced("run", a1, "noop")
        self.assertEqual(r.rc, 0, r)
        calls = self.tf.hook_calls("run")
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0].get("ENVEXEC_TAGS", ""), "")
        self.assertNotIn("tags", calls[0]["stdin"])

    def test_a_stopped_rollout_asks_the_hook_only_for_the_batches_it_runs(self):
        self.tf.failing(self, 1)
        self.tf.clear_hook_calls()
        r, doc = self.ced_json("run", "--tags", "role=web", "--batch", "1", "--max-failures",
                               "0", "flaky")
        self.assertEqual(r.rc, 1, r)
        calls = self.tf.hook_calls("run")
        self.assertEqual([c["ENVEXEC_HOSTS"] for c in calls], self.n(1))


class TooManyHosts(unittest.TestCase):
    """501 registered agents (records only: nothing is contacted) with one tag."""

    @classmethod
    def setUpClass(cls):
        scope = tagfleet.ClassScope(cls)
        cls.root = scope.root
        pairlib.setup_dispatcher(cls.root)
        port = harness.free_port()  # nobody listens there
        cls.names = ["h%03d.bulk.test" % i for i in range(501)]
        for n in cls.names:
            cls.root.write("/var/lib/ctrl-exec/agents/%s.json" % n, json.dumps({
                "hostname": n, "ip": "127.0.0.1", "port": port, "lookup_by": "ip",
                "paired": "2026-01-01T00:00:00Z", "expiry": "unknown", "reqid": "0" * 16,
                "tags": {"bulk": "yes", "half": "a" if int(n[1:4]) % 2 else "b"}}))

    def ced(self, *args):
        return self.root.run(["ced"] + list(args), timeout=60)

    def test_more_than_500_need_batches(self):
        names = self.names
        for args in (["run", "--tags", "bulk=yes", "noop"],
                     ["ping", "--tags", "bulk=yes"],
                     # 400 named and all 501 by the tag: 501 once duplicates are dropped.
                     ["run", *names[:400], "--tags", "bulk=yes", "noop"],
                     ["run", "--tags", "bulk=yes", "--batch", "501", "noop"]):
            with self.subTest(args=args[:3] + ["..."]):
                r = self.ced(*args)
                what = tagfleet.short(r)
                self.assertEqual(r.rc, 2, what)
                self.assertIn("too many hosts (max 500)", displib.without_logs(r.err), what)
                self.assertEqual(r.out, "", what)
                self.assertEqual(len(tagfleet.log_fields(r.err, "dispatch")), 0, what)
                self.assertEqual(len(tagfleet.log_fields(r.err, "ping")), 0, what)

    def test_501_named_hosts_without_tags_or_batch_are_the_originals_fatal_error(self):
        # Without --tags or --batch the command is the original's, in its order (auth hook,
        # locks, then the engine's cap): fatal, exit 255, before any connection.
        r = self.ced("run", *self.names, "noop")
        what = tagfleet.short(r)
        self.assertEqual(r.rc, 255, what)
        self.assertIn("too many hosts (max 500)", displib.without_logs(r.err), what)
        self.assertEqual(r.out, "", what)
        self.assertEqual(len(tagfleet.log_fields(r.err, "dispatch")), 0, what)

    def test_500_is_the_limit_and_batches_take_more(self):
        names = self.names
        # h000..h499 named, half=a (the odd ones) are all among them: 500 hosts, one dispatch
        # (nobody listens: each host is unreachable).
        r = self.root.run(["ced", "--json", "run", *names[:500], "--tags", "half=a", "noop"],
                          timeout=120)
        self.assertEqual(r.rc, 1, tagfleet.short(r))
        dispatch = tagfleet.log_fields(r.err, "dispatch")
        self.assertEqual(len(dispatch), 1, tagfleet.short(r))
        self.assertEqual(dispatch[0]["HOSTS"].split(","), names[:500])
        self.assertEqual(len(json.loads(r.out)["results"]), 500)
        # All 501 in batches: the first fails, the rest are skipped.
        r = self.ced("--json", "run", "--tags", "bulk=yes", "--batch", "100", "--max-failures",
                     "0", "noop")
        self.assertEqual(r.rc, 1, tagfleet.short(r))
        doc = json.loads(r.out)
        self.assertEqual([len(b["hosts"]) for b in doc["batches"]], [100] * 5 + [1])
        self.assertEqual([b["state"] for b in doc["batches"]], ["done"] + ["skipped"] * 5)
        self.assertEqual(len(doc["results"]), 501)
        self.assertEqual(len(tagfleet.log_fields(r.err, "dispatch")), 1, tagfleet.short(r))


if __name__ == "__main__":
    harness.main()
