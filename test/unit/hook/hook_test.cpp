// Tests for src/hook/hook.cpp with real hook scripts.
#include <catch2/catch.hpp>

#include <algorithm>

#include <vector>

#include <sys/stat.h>

#include "base/files.hpp"
#include "base/time.hpp"
#include "hook/hook.hpp"
#include "log/log.hpp"
#include "test/unit/testutil.hpp"

using namespace cx;

namespace {
std::string write_hook(const test::TempDir& dir, const std::string& name, const std::string& body) {
  std::string path = dir / name;
  REQUIRE(write_file_atomic(path, "#!/bin/sh\n" + body + "\n", {.mode = 0755}).ok());
  return path;
}

hook::Decision check(const hook::Policy& p, hook::Request req = {}) {
  event::Loop loop;
  hook::Decision out;
  bool done = false;
  auto c = hook::Check::start(loop, p, std::move(req), [&](hook::Decision d) {
    out = d;
    done = true;
  });
  loop.run();
  REQUIRE(done);
  return out;
}

hook::Request sample() {
  hook::Request r;
  r.action = "run";
  r.script = "deploy";
  r.hosts = {"web-01", "web-02:7450"};
  r.args = {"hello world", "two"};
  r.username = "alice";
  r.token = "s3cret";
  r.source_ip = "127.0.0.1";
  return r;
}
} // namespace

TEST_CASE("exit codes map to decisions", "[hook]") {
  test::TempDir dir;
  log::init("test", log::Sink::capture);
  struct Row {
    std::string body;
    bool allowed;
    std::string reason;
    int code;
  };
  const Row rows[] = {
      {"exit 0", true, "", 0},
      {"exit 1", false, "denied", 1},
      {"exit 2", false, "bad credentials", 2},
      {"exit 3", false, "insufficient privilege", 3},
      {"exit 99", false, "hook exited 99", 99},
      // The original read a signal death as exit 0 (allow); we deny.
      {"kill -KILL $$", false, "hook killed by signal 9", 1},
  };
  int i = 0;
  for (const auto& row : rows) {
    std::string name = std::to_string(i++);
    name.insert(name.begin(), 'h'); // not "h" + ...: GCC 12's -Wrestrict false positive (PR105329)
    auto path = write_hook(dir, name, row.body);
    auto d = check({.hook_path = path, .caller = hook::Caller::cli}, sample());
    INFO(row.body);
    CHECK(d.allowed == row.allowed);
    CHECK(d.reason == row.reason);
    CHECK(d.code == row.code);
  }
  log::shutdown();
}

TEST_CASE("the hook sees the request on stdin and in ENVEXEC_*", "[hook]") {
  test::TempDir dir;
  std::string out = dir / "seen";
  auto path = write_hook(dir, "hook",
                         "cat > '" + out + ".stdin'; env | grep ^ENVEXEC_ | sort > '" + out +
                             ".env'; exit 0");
  log::init("test", log::Sink::capture);
  auto req = sample();
  req.submitter = hook::Submitter{"bob", "10.0.0.9"};
  req.reqid = "0123456789abcdef";
  auto d = check({.hook_path = path, .caller = hook::Caller::api}, req);
  CHECK(d.allowed);
  std::string in = test::slurp(out + ".stdin");
  CHECK(in.rfind("{\"action\":\"run\",\"script\":\"deploy\",\"hosts\":[\"web-01\",\"web-02:7450\"],"
                 "\"args\":[\"hello world\",\"two\"],\"username\":\"alice\",\"token\":\"s3cret\","
                 "\"source_ip\":\"127.0.0.1\",\"dispatcher\":\"\",\"dispatcher_serial\":\"\","
                 "\"reqid\":\"0123456789abcdef\",\"submitter\":{\"username\":\"bob\","
                 "\"source_ip\":\"10.0.0.9\"},\"timestamp\":\"",
                 0) == 0);
  std::string env = test::slurp(out + ".env");
  for (const char* line :
       {"ENVEXEC_ACTION=run\n", "ENVEXEC_ARGS=hello world two\n",
        "ENVEXEC_ARGS_JSON=[\"hello world\",\"two\"]\n", "ENVEXEC_DISPATCHER=\n",
        "ENVEXEC_HOSTS=web-01,web-02:7450\n", "ENVEXEC_REQID=0123456789abcdef\n",
        "ENVEXEC_SCRIPT=deploy\n", "ENVEXEC_SOURCE_IP=127.0.0.1\n", "ENVEXEC_SUBMITTER=bob\n",
        "ENVEXEC_SUBMITTER_IP=10.0.0.9\n", "ENVEXEC_TOKEN=s3cret\n", "ENVEXEC_USERNAME=alice\n"}) {
    INFO(line);
    CHECK(env.find(line) != std::string::npos);
  }
  log::shutdown();
}

TEST_CASE("a tag selector reaches the hook as ENVEXEC_TAGS and a tags member", "[hook]") {
  auto req = sample();
  CHECK(hook::stdin_json(req, "T").find("\"tags\"") == std::string::npos);
  auto env = hook::environment(req, "T", nullptr);
  CHECK(std::find(env.begin(), env.end(), "ENVEXEC_TAGS=") != env.end());
  req.tags = std::vector<std::pair<std::string, std::string>>{{"role", "web"}, {"env", "prod"}};
  CHECK(hook::stdin_json(req, "T").find(R"("tags":{"role":"web","env":"prod"},"timestamp":"T")") !=
        std::string::npos);
  env = hook::environment(req, "T", nullptr);
  CHECK(std::find(env.begin(), env.end(), "ENVEXEC_TAGS=role=web,env=prod") != env.end());
}

TEST_CASE("a hung hook is killed at the timeout and denies", "[hook]") {
  test::TempDir dir;
  log::init("test", log::Sink::capture);
  auto path = write_hook(dir, "slow", "sleep 30");
  uint64_t start = monotonic_ms();
  auto d = check({.hook_path = path, .timeout_s = 1, .caller = hook::Caller::api}, sample());
  CHECK_FALSE(d.allowed);
  CHECK(d.reason == "denied");
  CHECK(monotonic_ms() - start < 5000);
  auto lines = log::captured();
  bool saw_timeout = false;
  for (auto& r : lines)
    if (r.line == "ACTION=auth-hook-timeout TIMEOUT=1") saw_timeout = true;
  CHECK(saw_timeout);
  // A prompt allow still allows with the same timeout.
  auto fast = write_hook(dir, "fast", "exit 0");
  CHECK(check({.hook_path = fast, .timeout_s = 1, .caller = hook::Caller::api}, sample()).allowed);
  log::shutdown();
}

TEST_CASE("no hook, and a hook that cannot run", "[hook]") {
  log::init("test", log::Sink::capture);
  auto policy = [](hook::Caller caller, bool api_default_allow = false, std::string path = "") {
    hook::Policy p;
    p.hook_path = std::move(path);
    p.api_default_allow = api_default_allow;
    p.caller = caller;
    return p;
  };
  struct Row {
    hook::Policy policy;
    bool allowed;
    std::string reason;
  };
  const std::vector<Row> rows = {
      {policy(hook::Caller::cli), true, ""},
      {policy(hook::Caller::agent), true, ""},
      {policy(hook::Caller::api, true), true, ""},
      {policy(hook::Caller::api), false, "no auth hook configured"},
      {policy(hook::Caller::cli, false, "/nonexistent/hook"), false,
       "auth hook not found or not executable: /nonexistent/hook"},
  };
  for (const auto& row : rows) {
    auto d = check(row.policy, sample());
    CHECK(d.allowed == row.allowed);
    CHECK(d.reason == row.reason);
  }
  auto lines = log::captured();
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0].line == "ACTION=auth AUTHACTION=run DISPATCHER= IP=127.0.0.1 REASON=no-hook-cli "
                         "RESULT=pass USER=alice");
  CHECK(lines.back().line ==
        "ACTION=auth HOOK=/nonexistent/hook REASON=hook-not-executable RESULT=error");
  log::shutdown();
}
