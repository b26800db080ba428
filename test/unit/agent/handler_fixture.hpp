// Shared by the handler tests (test/unit/agent/handle_*_test.cpp): an agent Context served
// from real files in a temp root, and a fake Client that records what a handler answers.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/context.hpp"
#include "agent/handlers.hpp"
#include "base/files.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "testutil.hpp"
#include "json/json.hpp"

namespace cx::test {

// The serial the trusted map holds for "disp-1", and one it does not hold.
inline constexpr const char* kTrustedSerial = "7f3a9c";
inline constexpr const char* kStrangerSerial = "0bad";

class FakeClient : public agent::Client {
public:
  struct Answer {
    int status;
    std::string body;
    std::string content_type = "application/json";
  };
  std::vector<Answer> answers;
  bool aborted = false;

  // As the connection: an answer after the client has gone reaches nobody.
  void respond(int status, std::string_view body) override {
    if (!gone_) answers.push_back({status, std::string(body)});
  }
  // A streamed answer is recorded whole when it ends; `streamed` holds it while it runs.
  void begin_stream(int status, std::string_view content_type) override {
    if (!gone_) streaming_ = Answer{status, "", std::string(content_type)};
  }
  void send(std::string bytes) override {
    if (!gone_ && streaming_) streaming_->body += bytes;
  }
  void end_stream() override {
    if (!gone_ && streaming_) answers.push_back(std::move(*streaming_));
    streaming_.reset();
  }
  const std::optional<Answer>& streamed() const { return streaming_; }
  void abort() override { aborted = true; }
  void on_close(std::function<void()> fn) override { closed_ = std::move(fn); }

  // The client goes away: what was registered with on_close runs.
  void leave() {
    gone_ = true;
    if (auto fn = std::move(closed_)) fn();
  }
  // The one answer given so far.
  const Answer& answer() const {
    REQUIRE(answers.size() == 1);
    return answers.front();
  }
  // That answer's body, parsed.
  json::Document answer_json() const {
    auto doc = json::parse(answer().body);
    REQUIRE(doc.ok());
    return std::move(*doc);
  }

private:
  std::function<void()> closed_;
  std::optional<Answer> streaming_;
  bool gone_ = false;
};

class AgentFixture {
public:
  TempDir dir;
  event::Loop loop;
  agent::Paths paths{dir / "agent.conf", dir / "scripts.conf"};
  std::unique_ptr<agent::Context> ctx;

  // `extra` is added to agent.conf's top section.
  explicit AgentFixture(const std::string& extra = "") {
    log::init("ctrl-exec-agent", log::Sink::capture);
    REQUIRE(make_dirs(dir / "scripts").ok());
    write("map", std::string(kTrustedSerial) + " disp-1\n");
    write("revoked", "");
    write("scripts.conf", "");
    write_conf(extra);
    load();
  }
  ~AgentFixture() {
    ctx.reset();
    log::shutdown();
  }

  void write(const std::string& name, const std::string& text, unsigned mode = 0644) {
    WriteOptions o;
    o.mode = mode;
    REQUIRE(write_file_atomic(dir / name, text, o).ok());
  }
  void write_conf(const std::string& extra) {
    write("agent.conf", "port = 7443\ncert = " + dir / "agent.crt" +
                            "\nkey = " + dir / "agent.key" + "\nca = " + dir / "ca.crt" +
                            "\ntrusted_dispatchers_path = " + dir / "map" + "\nrevoked_serials = " +
                            dir / "revoked" + "\ncert_staging_path = " + dir / "agent.crt.staged" +
                            "\nasync_runs_dir = " + dir / "runs" + "\n" + extra +
                            "\n[tags]\nrole = web\n[profile default]\n");
  }
  // An executable shell script in the temp root; returns its path.
  std::string script(const std::string& name, const std::string& body) {
    write(name, "#!/bin/sh\n" + body + "\n", 0755);
    return dir / name;
  }
  // A script allowlisted under `name`.
  void allow(const std::string& name, const std::string& body) {
    std::string path = script("scripts/" + name + ".sh", body);
    std::string list = slurp(dir / "scripts.conf");
    write("scripts.conf", list + name + " = " + path + "\n");
  }
  // Configures an auth hook that writes the values of `vars` (e.g. "$ENVEXEC_ACTION") to
  // hook_saw() and then runs `then` (e.g. "exit 3"), and reloads.
  void use_hook(const std::string& vars, const std::string& then) {
    write_conf("auth_hook = " +
               script("hook", "echo \"" + vars + "\" > '" + dir / "hook-saw" + "'\n" + then));
    load();
  }
  std::string hook_saw() const { return slurp(dir / "hook-saw"); }
  // (Re)builds the Context from the files, as serve does.
  void load() {
    ctx.reset();
    auto st = agent::load_state(paths, nullptr);
    INFO(st.message());
    REQUIRE(st.ok());
    ctx = std::make_unique<agent::Context>(
        loop, paths, std::move(*st),
        agent::Identity{"agent.example", "9.9.9", "Jan  1 00:00:00 2031 GMT"});
    log::clear_captured();
  }

  std::shared_ptr<FakeClient> client = std::make_shared<FakeClient>();
  // A request from 127.0.0.1 showing `serial`.
  agent::Call call(std::string body = "", std::string serial = kTrustedSerial,
                   std::string param = "") {
    client = std::make_shared<FakeClient>();
    agent::Peer peer{"127.0.0.1", serial, agent::peer_key(serial), ctx->take_slot()};
    return agent::Call{client, std::move(peer), std::move(body), std::move(param)};
  }

  // Gives `handler` a request and runs the loop until it has been dealt with.
  void serve(void (*handler)(agent::Context&, agent::Call&), std::string body,
             std::string serial = kTrustedSerial) {
    auto c = call(std::move(body), std::move(serial));
    handler(*ctx, c);
    run();
  }
  // The same, but the client leaves at once, before the loop has run.
  void serve_and_leave(void (*handler)(agent::Context&, agent::Call&), std::string body) {
    auto c = call(std::move(body));
    handler(*ctx, c);
    client->leave();
    run();
  }
  // Runs the loop until nothing is left to do (hooks, scripts), within a deadline.
  void run() {
    uint64_t start = monotonic_ms();
    loop.run();
    CHECK(monotonic_ms() - start < 20000);
  }

  std::vector<std::string> logs() const {
    std::vector<std::string> out;
    for (const auto& r : log::captured())
      out.push_back(r.line);
    return out;
  }
  bool logged(const std::string& line) const {
    auto l = logs();
    return std::find(l.begin(), l.end(), line) != l.end();
  }
};

} // namespace cx::test
