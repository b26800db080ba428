"""A fleet of six tagged agents shared by the tests of a class (issue 14: tags and batches).

Pairing six agents is slow, so a class builds one fleet in setUpClass (ClassScope stands in for
the TestCase that displib.Fleet expects, with class cleanups) and its tests leave it as they
found it. Each agent serves the tags of TAGS from its `[tags]` section, and a `flaky` script
that fails (exit 3) while a flag file exists in its root, so a test picks which hosts fail
without reloading anything. The dispatcher's auth hook allows everything and records each call
(its ENVEXEC_* environment and its stdin) for the hook tests.

The registry caches tags only when a discovery or a ping refreshes them; the fixture writes the
agents' tags into the registry records itself, so the selection tests do not depend on the ping
refresh that another test checks."""
import datetime
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import displib  # noqa: E402
import harness  # noqa: E402

TAGS = {
    1: {"fleet": "test", "role": "web", "env": "prod"},
    2: {"fleet": "test", "role": "web", "env": "staging"},
    3: {"fleet": "test", "role": "web", "env": "prod"},
    4: {"fleet": "test", "role": "db", "env": "prod"},
    5: {"fleet": "test", "role": "db", "env": "staging"},
    6: {"fleet": "test", "role": "cache", "env": "prod"},
}

HOOK = "/etc/ctrl-exec/auth-hook"
HOOK_CALLS = "/etc/ctrl-exec/auth-hook.calls"
LOG_PREFIXES = ("ctrl-exec-dispatcher: ", "ctrl-exec-api: ")


class ClassScope:
    """What displib.Fleet needs of a TestCase (`root`, `addCleanup`), for a whole class."""

    def __init__(self, cls):
        self.root = harness.Root(cls.__name__[:30])
        cls.addClassCleanup(self.root.cleanup)
        self.addCleanup = cls.addClassCleanup


def tags_section(tags):
    return "[tags]\n" + "".join("%s = %s\n" % kv for kv in tags.items())


def write_hook(root):
    """The recording, allow-all auth hook; returns its path."""
    calls = root.path(HOOK_CALLS)
    return root.write(HOOK, (
        "#!/bin/sh\n"
        "{ echo ---; env | grep '^ENVEXEC_' | sort; printf 'STDIN='; tr -d '\\n'; echo; }"
        " >> '%s'\n"
        "exit 0\n") % calls, 0o755)


class TaggedFleet:
    def __init__(self, scope, dispatcher_extra=""):
        self.scope = scope
        self.disp = scope.root
        hook = write_hook(self.disp)
        self.fleet = displib.Fleet(scope, n=len(TAGS), dispatcher_extra=(
            "read_timeout = 5\nauth_hook = %s\n" % hook) + dispatcher_extra)
        self.agents = self.fleet.agents
        self.host = {a.name: a for a in self.agents}
        # What the registry holds right after pairing, before anything refreshed it.
        self.tags_after_pairing = {a.name: self.fleet.registry(a.name).get("tags")
                                   for a in self.agents}
        for i, a in enumerate(self.agents, 1):
            flaky = a.root.path("/opt/ctrl-exec-scripts/flaky.sh")
            with open(flaky, "w") as f:
                f.write("#!/bin/sh\nif [ -e '%s' ]; then echo flaky failed; exit 3; fi\n"
                        "echo ok\n" % self.flag(a))
            os.chmod(flaky, 0o755)
            conf = a.root.read("/etc/ctrl-exec-agent/scripts.conf")
            a.root.write("/etc/ctrl-exec-agent/scripts.conf", conf + "flaky = %s\n" % flaky)
            a.stop()
            a.write_conf(tags_section(TAGS[i]))
            a.start()
            self.set_registry_tags(a.name, TAGS[i])

    # --- agents ---

    def names(self, *indexes):
        """Registry names of agents by their 1-based index (all of them without indexes)."""
        return [self.agents[i - 1].name for i in indexes] if indexes else self.fleet.names()

    def agent(self, index):
        return self.agents[index - 1]

    @staticmethod
    def flag(agent):
        return agent.root.path("/fail-flag")

    def failing(self, test, *indexes):
        """Makes `flaky` fail on these agents until the test ends."""
        for i in indexes:
            path = self.flag(self.agent(i))
            open(path, "w").close()
            test.addCleanup(lambda p=path: os.path.exists(p) and os.unlink(p))

    def stopped(self, test, *indexes):
        """Stops these agents until the test ends (they are started again at its cleanup)."""
        for i in indexes:
            a = self.agent(i)
            a.stop()
            test.addCleanup(a.start)

    def set_agent_tags(self, index, tags, how="sighup"):
        """Rewrites the agent's `[tags]`, then SIGHUPs it (waiting for its reload line) or
        restarts it."""
        a = self.agent(index)
        a.write_conf(tags_section(tags))
        if how == "restart":
            a.stop()
            a.start()
            return
        before = self._reloads(a)
        os.kill(a.proc.pid, signal.SIGHUP)
        harness.wait_until(lambda: self._reloads(a) > before, what="%s to reload" % a.name)

    @staticmethod
    def _reloads(a):
        return sum(1 for l in a.log().splitlines()
                   if "ACTION=reload " in l and "STATUS=ok" in l)

    # --- dispatcher ---

    def registry_tags(self, name):
        return self.fleet.registry(name).get("tags")

    def set_registry_tags(self, name, tags):
        """Writes `tags` into the registry record as a refresh would (a fixture)."""
        rel = "/var/lib/ctrl-exec/agents/%s.json" % name
        rec = json.loads(self.disp.read(rel))
        rec["tags"] = dict(tags)
        with open(self.disp.path(rel), "w") as f:
            f.write(json.dumps(rec, separators=(",", ":")))

    def ced(self, *args, timeout=120):
        return self.fleet.ced(*args, timeout=timeout)

    def ced_json(self, *args, timeout=120):
        return self.fleet.ced_json(*args, timeout=timeout)

    def clear_hook_calls(self):
        p = self.disp.path(HOOK_CALLS)
        if os.path.exists(p):
            os.unlink(p)

    def hook_calls(self, action=None):
        """The recorded hook calls since the last clear, in order: dicts of the ENVEXEC_*
        variables, plus "stdin" (the decoded JSON the hook read)."""
        p = self.disp.path(HOOK_CALLS)
        if not os.path.exists(p):
            return []
        calls = []
        for chunk in open(p).read().split("---\n")[1:]:
            call = {}
            for line in chunk.splitlines():
                if line.startswith("STDIN="):
                    call["stdin"] = json.loads(line[len("STDIN="):])
                elif "=" in line:
                    k, v = line.split("=", 1)
                    call[k] = v
            if action is None or call.get("ENVEXEC_ACTION") == action:
                calls.append(call)
        return calls


def short(result, limit=1500):
    """A harness.Result for a failure message, its stdout and stderr cut to `limit` chars."""
    cut = lambda t: t if len(t) <= limit else t[:limit] + "...[%d more]" % (len(t) - limit)
    return "Result(rc=%r, out=%r, err=%r)" % (result.rc, cut(result.out), cut(result.err))


# --- log lines ---

_FIELD = re.compile(r'([A-Z_]+)=("[^"]*"|\S*)')


def log_fields(text, action):
    """The `ACTION=<action>` log lines of `text` (a dispatcher's or an API's stderr) as dicts of
    their fields, in order. The logger sorts fields by key, so no order is assumed."""
    out = []
    for line in (text or "").splitlines():
        for prefix in LOG_PREFIXES:
            if line.startswith(prefix):
                line = line[len(prefix):]
                break
        else:
            continue
        if not line.startswith("ACTION=%s " % action) and line != "ACTION=" + action:
            continue
        fields = {}
        for k, v in _FIELD.findall(line):
            fields[k] = v[1:-1] if v.startswith('"') and v.endswith('"') else v
        out.append(fields)
    return out


_ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def parse_iso(value, ms=False):
    """An ISO-8601 UTC time (`...Z`) as a datetime; `ms` requires exactly milliseconds."""
    if not (_ISO_MS if ms else _ISO).match(value or ""):
        raise AssertionError("not an ISO-8601 UTC time%s: %r" % (" with ms" if ms else "", value))
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in value else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(value, fmt)


def seconds_between(a, b):
    return (b - a).total_seconds()


REQID = r"^[0-9a-f]{16}$"


class RolloutChecks:
    """assert_rollout for a TestCase: the checks every batched answer passes, CLI or API."""

    def assert_rollout(self, log, doc, batches, states, failed, stopped, ok=1):
        """Checks a batched answer `doc` (`ced --json` or the API's) and the log lines of the
        process that ran it (`log`): `batches` the expected host lists in order, `states` each
        batch's state, `failed` each batch's failure count, `stopped` whether the rollout
        stopped. Returns the document's batches."""
        self.assertEqual(doc["ok"], ok, doc)
        got = doc["batches"]
        self.assertEqual([b["batch"] for b in got], list(range(1, len(batches) + 1)), doc)
        self.assertEqual([b["hosts"] for b in got], batches, doc)
        self.assertEqual([b["state"] for b in got], states, doc)
        self.assertEqual([b["failed"] for b in got], failed, doc)
        done = [b for b in got if b["state"] == "done"]
        for b in done:
            self.assertRegex(b["reqid"], REQID)
            self.assertLessEqual(parse_iso(b["started"]), parse_iso(b["finished"]))
        self.assertEqual(len({b["reqid"] for b in done}), len(done), "one reqid per batch")
        for prev, nxt in zip(done, done[1:]):
            # One batch at a time: the next starts after the previous one finished.
            self.assertLessEqual(parse_iso(prev["finished"]), parse_iso(nxt["started"]))
        # Results: every host once, batch by batch (completion order within a batch).
        results = doc["results"]
        self.assertEqual(len(results), sum(len(b) for b in batches), doc)
        at = 0
        for b in got:
            chunk = results[at:at + len(b["hosts"])]
            at += len(b["hosts"])
            self.assertEqual(sorted(x["host"] for x in chunk), sorted(b["hosts"]), doc)
            for x in chunk:
                if b["state"] == "skipped":
                    self.assertEqual(x["state"], "skipped", x)
                    self.assertTrue(x["error"].startswith("skipped:"), x)
                else:
                    self.assertNotEqual(x.get("state"), "skipped", x)
                    if "reqid" in x:
                        self.assertEqual(x["reqid"], b["reqid"], x)
        if stopped:
            self.assertIsInstance(doc.get("stopped"), str, doc)
            self.assertTrue(doc["stopped"], doc)
        else:
            self.assertNotIn("stopped", doc)
        # The log: one ACTION=batch and one batch-done line per batch that ran, one rollout.
        starts = log_fields(log, "batch")
        ends = log_fields(log, "batch-done")
        self.assertEqual(len(starts), len(done), log)
        self.assertEqual(len(ends), len(done), log)
        rollouts = {f.get("ROLLOUT") for f in starts + ends}
        self.assertEqual(len(rollouts), 1, log)
        rollout = next(iter(rollouts))
        self.assertRegex(rollout or "", REQID)
        total = 0
        for k, (s, e, b) in enumerate(zip(starts, ends, done), 1):
            self.assertEqual((s.get("BATCH"), s.get("BATCHES"), s.get("HOSTS"), s.get("REQID")),
                             (str(k), str(len(batches)), str(len(b["hosts"])), b["reqid"]), s)
            total += b["failed"]
            self.assertEqual((e.get("BATCH"), e.get("FAILED"), e.get("FAILED_TOTAL")),
                             (str(k), str(b["failed"]), str(total)), e)
            self.assertLessEqual(parse_iso(s.get("AT"), ms=True), parse_iso(e.get("AT"), ms=True))
        stops = log_fields(log, "rollout-stop")
        if stopped:
            self.assertEqual(len(stops), 1, log)
            skipped = sum(len(b["hosts"]) for b in got if b["state"] == "skipped")
            self.assertEqual((stops[0].get("ROLLOUT"), stops[0].get("FAILED"),
                              stops[0].get("SKIPPED")), (rollout, str(total), str(skipped)),
                             stops[0])
            self.assertTrue(stops[0].get("REASON"), stops[0])
        else:
            self.assertEqual(stops, [], log)
        return got

    def assert_waited(self, log, doc, wait, batches):
        """Between a batch's end and the next batch's start there are at least `wait` seconds,
        by the AT= times of the log lines and by the batches' times in the JSON (the times
        have milliseconds: one of rounding is allowed). Never a wall-clock measurement."""
        starts = log_fields(log, "batch")
        ends = log_fields(log, "batch-done")
        self.assertEqual((len(starts), len(ends)), (batches, batches), log)
        for end, nxt in zip(ends, starts[1:]):
            gap = seconds_between(parse_iso(end.get("AT"), ms=True),
                                  parse_iso(nxt.get("AT"), ms=True))
            self.assertGreaterEqual(gap, wait - 0.001, (end, nxt))
        self.assertEqual(len(doc["batches"]), batches, doc)
        for prev, nxt in zip(doc["batches"], doc["batches"][1:]):
            gap = seconds_between(parse_iso(prev["finished"]), parse_iso(nxt["started"]))
            self.assertGreaterEqual(gap, wait - 0.001, (prev, nxt))
