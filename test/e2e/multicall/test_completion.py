"""Bash completion: `ctrl-exec --completion DIR` installs the script, and the script completes
modes, options, agent names from a planted registry, pairing request ids, run ids and script
names, driven through COMP_WORDS/COMP_CWORD as bash would. Its options and modes must be those
of the man pages (docs/man), which the [man] unit test ties to the binary."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import harness  # noqa: E402

SCRIPT = os.path.join(harness.SOURCE_ROOT, "conf", "bash-completion", "ctrl-exec")
MAN = os.path.join(harness.SOURCE_ROOT, "docs", "man")
NAMES = ["cea", "ced", "ctrl-exec-agent", "ctrl-exec-api", "ctrl-exec-dispatcher",
         "ctrl-exec-exec", "ctrl-exec-pairing"]


def page_section(page, section):
    """The bold words that begin the lines of one section of a page's scdoc source."""
    words, current = [], None
    with open(os.path.join(MAN, page + ".scd")) as f:
        for line in f:
            if line.startswith("# "):
                current = line[2:].strip()
            elif current == section:
                m = re.match(r"\*([^*]+)\*", line)
                if m:
                    words.append(m.group(1).replace("\\", ""))
    return sorted(words)


class Completion(harness.TestCase):
    def setUp(self):
        super().setUp()
        root = self.root.dir
        agents = os.path.join(root, "var/lib/ctrl-exec/agents")
        os.makedirs(os.path.join(agents, ".registry.index.d"))
        for name in ("web1", "web2", "db1"):
            with open(os.path.join(agents, name + ".json"), "w") as f:
                f.write('{"hostname":"%s"}\n' % name)
        pairing = os.path.join(root, "var/lib/ctrl-exec/pairing")
        os.makedirs(pairing)
        for name in ("a1b2c3d4e5f60718.json", "ffee000011112222.json",
                     "ffee000011112222.approved", "NOTANID.json"):
            open(os.path.join(pairing, name), "w").close()
        runs = os.path.join(root, "var/lib/ctrl-exec/runs")
        os.makedirs(runs)
        open(os.path.join(runs, "0123456789abcdef.json"), "w").close()
        agent_etc = os.path.join(root, "etc/ctrl-exec-agent")
        os.makedirs(agent_etc)
        with open(os.path.join(agent_etc, "scripts.conf"), "w") as f:
            f.write("# comment = no\ncheck-disk = /opt/s/check-disk.sh\n"
                    "  restart_web = /opt/s/restart.sh profile=web\n")

    def complete(self, line, env=None):
        """The completions bash would offer for `line` (the last word being completed)."""
        words = line.split(" ")
        program = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                   'complete -p "${COMP_WORDS[0]##*/}" >/dev/null || exit 3; '
                   '_ctrl_exec; printf "%s\\n" "${COMPREPLY[@]}"')
        e = dict(self.root.env)
        e.update(env or {})
        p = subprocess.run(["bash", "--norc", "-c", program, "bash", SCRIPT] + words,
                           capture_output=True, text=True, env=e)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        return sorted(w for w in p.stdout.split("\n") if w)

    def test_completion_option_installs_the_script_and_a_link_per_name(self):
        d = tempfile.mkdtemp(dir=self.root.dir)
        for _ in range(2):
            p = subprocess.run([harness.BINARY, "--completion", d], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(d)), sorted(NAMES + ["ctrl-exec"]))
        with open(os.path.join(d, "ctrl-exec")) as got, open(SCRIPT) as want:
            self.assertEqual(got.read(), want.read())
        for name in NAMES:
            self.assertEqual(os.readlink(os.path.join(d, name)), "ctrl-exec")

    def test_install_with_completion(self):
        bindir = tempfile.mkdtemp(dir=self.root.dir)
        compdir = tempfile.mkdtemp(dir=self.root.dir)
        p = subprocess.run([harness.BINARY, "--install", bindir, "--completion", compdir],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(os.listdir(bindir)), NAMES)
        self.assertIn("ctrl-exec", os.listdir(compdir))
        p = subprocess.run([harness.BINARY, "--completion"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([harness.BINARY, "--completion", os.path.join(compdir, "none")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a directory", p.stderr)

    def test_options_and_modes_are_the_man_pages(self):
        rows = [  # command line, page, section
            ("ctrl-exec-dispatcher -", "ctrl-exec-dispatcher.8", "OPTIONS"),
            ("ced -", "ctrl-exec-dispatcher.8", "OPTIONS"),
            ("ced ", "ctrl-exec-dispatcher.8", "MODES"),
            ("cea -", "ctrl-exec-agent.8", "OPTIONS"),
            ("ctrl-exec-agent ", "ctrl-exec-agent.8", "MODES"),
            ("ctrl-exec-api -", "ctrl-exec-api.8", "OPTIONS"),
            ("ctrl-exec-pairing -", "ctrl-exec-pairing.8", "OPTIONS"),
            ("ctrl-exec-pairing ", "ctrl-exec-pairing.8", "MODES"),
            ("ctrl-exec-exec -", "ctrl-exec-exec.8", "OPTIONS"),
            ("ctrl-exec-exec ", "ctrl-exec-exec.8", "MODES"),
            ("ctrl-exec ced ", "ctrl-exec-dispatcher.8", "MODES"),
        ]
        for line, page, section in rows:
            with self.subTest(line=line):
                want = page_section(page, section)
                self.assertTrue(want)
                self.assertEqual(self.complete(line), want)
        top = [w for w in self.complete("ctrl-exec ") if w.startswith("-")]
        self.assertEqual(top, [w for w in page_section("ctrl-exec.1", "OPTIONS")
                               if w.startswith("-")])
        self.assertEqual([w for w in self.complete("ctrl-exec ") if not w.startswith("-")], NAMES)

    def test_words(self):
        rows = [
            ("ced run --ba", ["--batch", "--batch-wait"]),
            ("ced ru", ["run"]),
            ("ced ping ", ["db1", "web1", "web2"]),
            ("ced ping web1 w", ["web1", "web2"]),
            ("ced --json ping w", ["web1", "web2"]),
            ("ced --config /dev/null ping w", ["web1", "web2"]),
            ("ced run ", ["check-disk", "db1", "restart_web", "web1", "web2"]),
            ("ced run web1 ch", ["check-disk"]),
            ("ced run web1 check-disk -- ", []),
            ("ced unpair d", ["db1"]),
            ("ced unpair db1 ", []),
            ("ced edit-agent web1 --lookup-by ", ["hostname", "ip"]),
            ("ced edit-agent web1 --lookup-by = i", ["ip"]),
            ("ced approve ", ["a1b2c3d4e5f60718"]),
            ("ced deny a", ["a1b2c3d4e5f60718"]),
            ("ced status ", ["0123456789abcdef"]),
            ("ced wait 0", ["0123456789abcdef"]),
            ("ced pairing-mode ", ["start", "stop"]),
            ("ced --timeout 5 ", page_section("ctrl-exec-dispatcher.8", "MODES")),
            ("ced setup-ca --key-type ", ["ec", "rsa"]),
            ("cea request-pairing --key-type rsa:", ["rsa:2048", "rsa:3072", "rsa:4096"]),
            ("cea self-check ", []),
            ("ctrl-exec ced ping web", ["web1", "web2"]),
            ("ctrl-exec cea ser", ["serve"]),
            ("ctrl-exec --inst", ["--install"]),
            ("ctrl-exec --install /tmp --c", ["--completion"]),
            ("ctrl-exec-exec resolve /dev/null %s/etc/ctrl-exec-agent/scripts.conf r"
             % self.root.dir, ["restart_web"]),
        ]
        for line, want in rows:
            with self.subTest(line=line):
                self.assertEqual(self.complete(line), sorted(want))

    def test_script_names_from_the_cache_that_ping_writes(self):
        cache = os.path.join(self.root.dir, "var/lib/ctrl-exec/scripts.cache")
        with open(cache, "w") as f:
            f.write("db1 backup noop\nweb1 deploy noop\nweb2 deploy restart\n")
        rows = [
            # No host named yet (or none in the cache): every cached agent's scripts.
            ("ced run ", ["backup", "db1", "deploy", "noop", "restart", "web1", "web2"]),
            ("ced run web1 ", ["deploy", "noop", "web1", "web2", "db1"]),
            ("ced run web1 web2:7450 ", ["deploy", "noop", "restart", "web1", "web2", "db1"]),
            ("ced run --tags role=web b", ["backup"]),
            ("ced run nowhere d", ["db1", "deploy"]),
        ]
        for line, want in rows:
            with self.subTest(line=line):
                self.assertEqual(self.complete(line), sorted(want))

    def test_registry_dir_from_the_config(self):
        other = os.path.join(self.root.dir, "elsewhere")
        os.makedirs(other)
        open(os.path.join(other, "far1.json"), "w").close()
        conf = os.path.join(self.root.dir, "ctrl-exec.conf")
        with open(conf, "w") as f:
            f.write("registry_dir = %s\n" % other)
        self.assertEqual(self.complete("ced --config %s ping " % conf), ["far1"])
        self.assertEqual(self.complete("ced --config=%s unpair " % conf), ["far1"])
        # The default config under the root is read when --config is not given.
        os.makedirs(os.path.join(self.root.dir, "etc/ctrl-exec"))
        os.rename(conf, os.path.join(self.root.dir, "etc/ctrl-exec/ctrl-exec.conf"))
        self.assertEqual(self.complete("ced ping "), ["far1"])

    def test_shellcheck_clean(self):
        p = subprocess.run(["shellcheck", SCRIPT], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_no_root_no_state(self):
        empty = tempfile.mkdtemp(dir=self.root.dir)
        self.assertEqual(self.complete("ced ping ", {"CTRL_EXEC_ROOT": empty}), [])
        self.assertEqual(self.complete("ced approve ", {"CTRL_EXEC_ROOT": empty}), [])


if __name__ == "__main__":
    harness.main()
