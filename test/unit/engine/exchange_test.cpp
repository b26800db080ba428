// Tests for the per-exchange result builders of src/engine/engine.cpp (tag [engine]): each is
// fed a hand-made AgentReply (status 0 with an error kind for a transport failure, or an HTTP
// status with a body) and must give the exact result object, HostState and log line of
// dispatcher-and-api §5.4-§5.9 and §10.1.
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/engine.hpp"
#include "log/log.hpp"
#include "json/writer.hpp"

using namespace cx;
using namespace cx::engine;

namespace {

constexpr const char* kReqid = "a1b2c3d4e5f60001";

// Starts the capture sink for one test and restores the default afterwards.
struct CapturedLog {
  CapturedLog() {
    log::init("test", log::Sink::capture);
    log::clear_captured();
  }
  ~CapturedLog() { log::shutdown(); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
};

// Captured lines as "<I|W|E> <line>", then cleared for the next row.
std::vector<std::string> take_lines() {
  std::vector<std::string> out;
  for (const auto& r : log::captured()) {
    const char* level = r.level == log::Level::info      ? "I "
                        : r.level == log::Level::warning ? "W "
                                                         : "E ";
    out.push_back(level + r.line);
  }
  log::clear_captured();
  return out;
}

AgentReply answer(int status, std::string reason, std::string body, std::string host = "10.0.0.9") {
  AgentReply r;
  r.host = std::move(host);
  r.port = 7443;
  r.status = status;
  r.reason = std::move(reason);
  r.body = std::move(body);
  r.rtt_us = 12345; // "12ms"
  return r;
}

// A transport failure as the HTTP client reports it: a kind and its message.
AgentReply failure(ErrorKind kind, std::string message, std::string host = "10.0.0.9") {
  AgentReply r;
  r.host = std::move(host);
  r.port = 7443;
  r.error = error(kind, std::move(message));
  r.rtt_us = 12345;
  return r;
}

struct Row {
  AgentReply reply;
  std::string json; // json::canonical of the result
  HostState state;
  std::vector<std::string> log;
};

void check_rows(const std::vector<Row>& rows,
                const std::function<HostResult(const AgentReply&)>& build) {
  CapturedLog capture;
  for (const auto& r : rows) {
    INFO("status " << r.reply.status << " " << r.reply.reason << " error "
                   << kind_name(r.reply.error.kind()) << " '" << r.reply.error.message()
                   << "' body " << r.reply.body);
    HostResult hr = build(r.reply);
    CHECK(hr.doc.IsObject());
    CHECK(json::canonical(hr.doc) == r.json);
    CHECK(state_name(hr.state) == state_name(r.state));
    CHECK(hr.rtt_us == 12345);
    CHECK(take_lines() == r.log);
  }
}

const std::string kRefused = "host '10.0.0.9' did not respond on port 7443 - connection refused "
                             "(agent not running, or wrong port?)";
const std::string kTimedOut = "host '10.0.0.9' did not respond - connection timed out";
const std::string kTls = "TLS handshake with '10.0.0.9' failed - certificate or trust mismatch";
const std::string kUnreachable =
    "host '10.0.0.9' is unreachable - no route to host or network down";
const std::string kNoName = "host '10.0.0.9' did not resolve - check the name or use an IP address";

} // namespace

TEST_CASE("run_result, sync: agent answers, refusals and failures", "[engine]") {
  const std::string R = kReqid;
  // Shapes of §5.4; the INFO line of a success carries our TLS key (docs/COMPATIBILITY.md).
  auto ok_line = [&](const std::string& exit) {
    return "I ACTION=run EXIT=" + exit + " REQID=" + R +
           " RTT=12ms SCRIPT=backup TARGET=10.0.0.9:7443 TLS=full";
  };
  auto err_line = [&](const std::string& error) {
    return "E ACTION=run ERROR=\"" + error + "\" REQID=" + R +
           " RTT=12ms SCRIPT=backup TARGET=10.0.0.9:7443";
  };
  auto err_json = [&](const std::string& error, const std::string& state) {
    return R"({"error":")" + error + R"(","exit":-1,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":")" + state + R"("})";
  };
  const std::vector<Row> rows = {
      {answer(200, "OK",
              R"({"script":"backup","exit":0,"stdout":"ok\n","stderr":"","reqid":")" + R + R"("})"),
       R"({"exit":0,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok","stderr":"","stdout":"ok\n"})",
       HostState::ok,
       {ok_line("0")}},
      // The agent's own `host` differs from the registry name: reported_hostname; a missing
      // reqid is filled in.
      {answer(200, "OK",
              R"({"script":"backup","exit":0,"stdout":"","stderr":"","host":"db-01.example.com"})"),
       R"({"exit":0,"host":"db-01","reported_hostname":"db-01.example.com","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok","stderr":"","stdout":""})",
       HostState::ok,
       {ok_line("0")}},
      // Equal or empty: no reported_hostname. An agent's reqid is kept as it is.
      {answer(200, "OK", R"({"script":"backup","exit":0,"host":"db-01","reqid":"ffff"})"),
       R"({"exit":0,"host":"db-01","reqid":"ffff","rtt":"12ms","script":"backup","state":"ok"})",
       HostState::ok,
       {ok_line("0")}},
      {answer(200, "OK", R"({"script":"backup","exit":0,"host":""})"),
       R"({"exit":0,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok"})",
       HostState::ok,
       {ok_line("0")}},
      // A script that fails is still an answered exchange.
      {answer(200, "OK", R"({"script":"backup","exit":2,"reqid":")" + R + R"("})"),
       R"({"exit":2,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok"})",
       HostState::ok,
       {ok_line("2")}},
      // Agent refusals arrive as 200 with exit -1.
      {answer(200, "OK",
              R"({"script":"backup","exit":-1,"error":"script not permitted","reqid":")" + R +
                  R"("})"),
       err_json("script not permitted", "error"),
       HostState::error,
       {ok_line("-1")}},
      {answer(200, "OK",
              R"({"script":"backup","exit":-1,"error":"not authorised: bad token","reqid":")" + R +
                  R"("})"),
       err_json("not authorised: bad token", "denied"),
       HostState::denied,
       {ok_line("-1")}},
      // A 2xx that is not JSON.
      {answer(200, "OK", "<html>oops</html>"),
       R"({"error":"invalid JSON response","exit":-1,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","state":"error"})",
       HostState::error,
       {ok_line("-1")}},
      // 403: body.error, else the status line.
      {answer(403, "Forbidden", R"({"status":"error","error":"serial mismatch"})"),
       err_json("forbidden: serial mismatch", "denied"),
       HostState::denied,
       {err_line("forbidden: serial mismatch")}},
      {answer(403, "Forbidden", ""),
       err_json("forbidden: 403 Forbidden", "denied"),
       HostState::denied,
       {err_line("forbidden: 403 Forbidden")}},
      {answer(403, "Forbidden", R"({"status":"denied"})"),
       err_json("forbidden: 403 Forbidden", "denied"),
       HostState::denied,
       {err_line("forbidden: 403 Forbidden")}},
      // Perl's `//` keeps a defined empty error.
      {answer(403, "Forbidden", R"({"error":""})"),
       err_json("forbidden: ", "denied"),
       HostState::denied,
       {err_line("forbidden: ")}},
      {answer(413, "Content Too Large", R"({"error":"body too large"})"),
       err_json("request too large", "error"),
       HostState::error,
       {err_line("request too large")}},
      // Other statuses: the status line through the rewrite, which passes it through.
      {answer(500, "Internal Server Error", R"({"error":"boom"})"),
       err_json("500 Internal Server Error", "error"),
       HostState::error,
       {err_line("500 Internal Server Error")}},
      {answer(404, "Not Found", ""),
       err_json("404 Not Found", "error"),
       HostState::error,
       {err_line("404 Not Found")}},
      {answer(409, "Conflict", R"({"error":"script already running"})"),
       err_json("409 Conflict", "error"),
       HostState::error,
       {err_line("409 Conflict")}},
      // Transport failures.
      {failure(ErrorKind::read_timeout, "read timeout"),
       err_json("read timeout after 60s", "timeout"),
       HostState::timeout,
       {err_line("read timeout after 60s")}},
      {failure(ErrorKind::read_timeout, "Read Timeout while waiting"),
       err_json("read timeout after 60s", "timeout"),
       HostState::timeout,
       {err_line("read timeout after 60s")}},
      {failure(ErrorKind::refused, "connection refused"),
       err_json(kRefused, "unreachable"),
       HostState::unreachable,
       {err_line(kRefused)}},
      {failure(ErrorKind::timeout, "connection timed out"),
       err_json(kTimedOut, "timeout"),
       HostState::timeout,
       {err_line(kTimedOut)}},
      {failure(ErrorKind::tls, "TLS handshake failed: X509 - Certificate verification failed"),
       err_json(kTls, "error"),
       HostState::error,
       {err_line(kTls)}},
      {failure(ErrorKind::other, "no response"),
       err_json("no response", "error"),
       HostState::error,
       {err_line("no response")}},
  };
  RunSpec spec;
  spec.script = "backup";
  spec.reqid = R;
  check_rows(rows, [&](const AgentReply& reply) { return run_result("db-01", reply, spec, 60); });

  // The read timeout names the configured timeout.
  CapturedLog capture;
  HostResult r = run_result("db-01", failure(ErrorKind::read_timeout, "read timeout"), spec, 7);
  CHECK(string_member(r.doc, "error") == "read timeout after 7s");
  CHECK(take_lines() == std::vector<std::string>{err_line("read timeout after 7s")});

  // Every other kind of transport failure: the kind decides the text and state, whatever the
  // words (the whole-exchange deadline is a timeout but not a read timeout; a TLS handshake
  // under which the connection timed out is a timeout); kinds without a text of their own
  // show their message.
  const std::tuple<ErrorKind, std::string, std::string, HostState> kinds[] = {
      {ErrorKind::timeout, "timed out: no complete response within 180s", kTimedOut,
       HostState::timeout},
      {ErrorKind::timeout, "TLS handshake failed: connection error: connection timed out",
       kTimedOut, HostState::timeout},
      {ErrorKind::unreachable, "no route to host", kUnreachable, HostState::unreachable},
      {ErrorKind::dns, "cannot resolve host '10.0.0.9': unknown node or service", kNoName,
       HostState::unreachable},
      {ErrorKind::closed, "connection closed before a complete response",
       "connection closed before a complete response", HostState::error},
      {ErrorKind::io, "connection reset by peer", "connection reset by peer", HostState::error},
      {ErrorKind::protocol, "malformed status line", "malformed status line", HostState::error},
  };
  for (const auto& [kind, message, text, state] : kinds) {
    INFO(kind_name(kind) << " " << message);
    HostResult k = run_result("db-01", failure(kind, message), spec, 60);
    CHECK(json::canonical(k.doc) == err_json(text, std::string(state_name(state))));
    CHECK(take_lines() == std::vector<std::string>{err_line(text)});
  }
}

TEST_CASE("run_result, async: accepted, busy, refusals and failures", "[engine]") {
  const std::string R = kReqid;
  auto ok_line = [&](const std::string& status) {
    return "I ACTION=run-async REQID=" + R + " RTT=12ms SCRIPT=backup STATUS=" + status +
           " TARGET=10.0.0.9:7443 TLS=full";
  };
  const std::string busy_line =
      "W ACTION=run-async REQID=" + R + " RTT=12ms SCRIPT=backup STATUS=busy TARGET=10.0.0.9:7443";
  auto err_line = [&](const std::string& error) {
    return "E ACTION=run-async ERROR=\"" + error + "\" REQID=" + R +
           " RTT=12ms SCRIPT=backup TARGET=10.0.0.9:7443";
  };
  auto status_json = [&](const std::string& status, const std::string& error,
                         const std::string& state) {
    return R"({"error":")" + error + R"(","host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":")" + state + R"(","status":")" + status +
           R"("})";
  };
  const std::vector<Row> rows = {
      {answer(202, "Accepted", R"({"script":"backup","status":"accepted","reqid":")" + R + R"("})"),
       R"({"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok","status":"accepted"})",
       HostState::ok,
       {ok_line("accepted")}},
      {answer(202, "Accepted",
              R"({"script":"backup","status":"accepted","reqid":")" + R +
                  R"(","host":"db-01.example.com"})"),
       R"({"host":"db-01","reported_hostname":"db-01.example.com","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"ok","status":"accepted"})",
       HostState::ok,
       {ok_line("accepted")}},
      // 409: busy, with the agent's error or the default, logged at WARNING.
      {answer(409, "Conflict", R"({"status":"busy","error":"already running as pid 42"})"),
       status_json("busy", "already running as pid 42", "busy"),
       HostState::busy,
       {busy_line}},
      {answer(409, "Conflict", ""),
       status_json("busy", "script already running", "busy"),
       HostState::busy,
       {busy_line}},
      {answer(409, "Conflict", R"({"status":"busy"})"),
       status_json("busy", "script already running", "busy"),
       HostState::busy,
       {busy_line}},
      // Failures: status "error", no exit.
      {answer(403, "Forbidden", R"({"error":"serial mismatch"})"),
       status_json("error", "forbidden: serial mismatch", "denied"),
       HostState::denied,
       {err_line("forbidden: serial mismatch")}},
      {answer(413, "Content Too Large", ""),
       status_json("error", "request too large", "error"),
       HostState::error,
       {err_line("request too large")}},
      {answer(500, "Internal Server Error", ""),
       status_json("error", "500 Internal Server Error", "error"),
       HostState::error,
       {err_line("500 Internal Server Error")}},
      {failure(ErrorKind::refused, "connection refused"),
       status_json("error", kRefused, "unreachable"),
       HostState::unreachable,
       {err_line(kRefused)}},
      {failure(ErrorKind::read_timeout, "read timeout"),
       status_json("error", "read timeout after 60s", "timeout"),
       HostState::timeout,
       {err_line("read timeout after 60s")}},
      // 200 without a status (async refused by the agent): no status member, logged as
      // accepted.
      {answer(200, "OK",
              R"({"script":"backup","exit":-1,"error":"async not available","reqid":")" + R +
                  R"("})"),
       R"({"error":"async not available","exit":-1,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"error"})",
       HostState::error,
       {ok_line("accepted")}},
      // The agent's auth hook refused the async run: denied, as a sync refusal is (issue 11,
      // defect 1).
      {answer(200, "OK",
              R"({"script":"backup","exit":-1,"error":"not authorised: denied","reqid":")" + R +
                  R"("})"),
       R"({"error":"not authorised: denied","exit":-1,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"denied"})",
       HostState::denied,
       {ok_line("accepted")}},
      // The same without a reqid: the dispatch's reqid is filled in, as for sync results.
      {answer(200, "OK", R"({"script":"backup","exit":-1,"error":"async not available"})"),
       R"({"error":"async not available","exit":-1,"host":"db-01","reqid":")" + R +
           R"(","rtt":"12ms","script":"backup","state":"error"})",
       HostState::error,
       {ok_line("accepted")}},
      // A 2xx that is not a JSON object: a submission that failed.
      {answer(202, "Accepted", "not json"),
       status_json("error", "invalid JSON response", "error"),
       HostState::error,
       {ok_line("error")}},
      // A body nested deeper than a run record could hold is treated as not JSON.
      {answer(202, "Accepted", std::string(500, '[') + std::string(500, ']')),
       status_json("error", "invalid JSON response", "error"),
       HostState::error,
       {ok_line("error")}},
      {answer(202, "Accepted",
              R"({"status":"accepted","x":)" + std::string(510, '[') + std::string(510, ']') + "}"),
       status_json("error", "invalid JSON response", "error"),
       HostState::error,
       {ok_line("error")}},
  };
  RunSpec spec;
  spec.script = "backup";
  spec.reqid = R;
  spec.async = true;
  check_rows(rows, [&](const AgentReply& reply) { return run_result("db-01", reply, spec, 60); });
}

TEST_CASE("ping_result: ok, 413, 403 and transport failures", "[engine]") {
  const std::string P = "b9186bcba84c8a3a";
  auto err_line = [&](const std::string& error, const std::string& host = "10.0.0.9") {
    return "E ACTION=ping ERROR=\"" + error + "\" REQID=" + P + " RTT=12ms TARGET=" + host +
           ":7443";
  };
  auto err_json = [](const std::string& error, const std::string& state) {
    return R"({"error":")" + error + R"(","host":"web-01","rtt":"12ms","state":")" + state +
           R"(","status":"error"})";
  };
  const std::string body = R"({"status":"ok","host":"web-01","version":"0.12.3",)"
                           R"("expiry":"Feb 27 04:17:27 2029 GMT","staged":false,"reqid":")" +
                           P + R"("})";
  AgentReply resumed = answer(200, "OK",
                              R"({"status":"ok","host":"web-01.example.com","version":"0.12.3",)"
                              R"("expiry":"Feb 27 04:17:27 2029 GMT","staged":true,"reqid":")" +
                                  P + R"("})");
  resumed.resumed = true;
  const std::vector<Row> rows = {
      {answer(200, "OK", body),
       R"({"expiry":"Feb 27 04:17:27 2029 GMT","host":"web-01","reqid":")" + P +
           R"(","rtt":"12ms","staged":false,"state":"ok","status":"ok","version":"0.12.3"})",
       HostState::ok,
       {"I ACTION=ping REQID=" + P + " RESULT=ok RTT=12ms TARGET=10.0.0.9:7443 TLS=full"}},
      {resumed,
       R"({"expiry":"Feb 27 04:17:27 2029 GMT","host":"web-01","reported_hostname":"web-01.example.com","reqid":")" +
           P + R"(","rtt":"12ms","staged":true,"state":"ok","status":"ok","version":"0.12.3"})",
       HostState::ok,
       {"I ACTION=ping REQID=" + P + " RESULT=ok RTT=12ms TARGET=10.0.0.9:7443 TLS=resumed"}},
      {answer(413, "Content Too Large", ""),
       err_json("request too large", "error"),
       HostState::error,
       {err_line("request too large")}},
      // A 2xx that is not a JSON object: the original's text (logged at ERR here).
      {answer(200, "OK", "<html>"),
       err_json("invalid JSON", "error"),
       HostState::error,
       {err_line("invalid JSON")}},
      {answer(403, "Forbidden", R"({"error":"serial mismatch"})"),
       err_json("forbidden: serial mismatch", "denied"),
       HostState::denied,
       {err_line("forbidden: serial mismatch")}},
      {answer(403, "Forbidden", ""),
       err_json("forbidden: 403 Forbidden", "denied"),
       HostState::denied,
       {err_line("forbidden: 403 Forbidden")}},
      {answer(500, "Internal Server Error", ""),
       err_json("500 Internal Server Error", "error"),
       HostState::error,
       {err_line("500 Internal Server Error")}},
      {failure(ErrorKind::refused, "connection refused"),
       err_json(kRefused, "unreachable"),
       HostState::unreachable,
       {err_line(kRefused)}},
      // No run-style "read timeout after": ping goes through the rewrite.
      {failure(ErrorKind::read_timeout, "read timeout"),
       err_json(kTimedOut, "timeout"),
       HostState::timeout,
       {err_line(kTimedOut)}},
      {failure(ErrorKind::dns, "Name or service not known", "nope.example"),
       err_json("host 'nope.example' did not resolve - check the name or use an IP address",
                "unreachable"),
       HostState::unreachable,
       {err_line("host 'nope.example' did not resolve - check the name or use an IP address",
                 "nope.example")}},
  };
  check_rows(rows, [&](const AgentReply& reply) { return ping_result("web-01", reply, P); });
}

TEST_CASE("capabilities_result: every failure through the rewrite only", "[engine]") {
  auto err_line = [](const std::string& error) {
    return "E ACTION=capabilities ERROR=\"" + error + "\" RTT=12ms TARGET=10.0.0.9:7443";
  };
  auto err_json = [](const std::string& error, const std::string& state) {
    return R"({"error":")" + error + R"(","host":"web-01","rtt":"12ms","state":")" + state +
           R"(","status":"error"})";
  };
  const std::vector<Row> rows = {
      {answer(
           200, "OK",
           R"({"status":"ok","host":"web-01","version":"0.12.3",)"
           R"("scripts":[{"name":"backup","path":"/usr/local/bin/backup","executable":true},)"
           R"({"name":"check-disk","path":"/bin/df","executable":true}],"tags":{"env":"prod"}})"),
       R"({"host":"web-01","rtt":"12ms",)"
       R"("scripts":[{"executable":true,"name":"backup","path":"/usr/local/bin/backup"},)"
       R"({"executable":true,"name":"check-disk","path":"/bin/df"}],)"
       R"("state":"ok","status":"ok","tags":{"env":"prod"},"version":"0.12.3"})",
       HostState::ok,
       {"I ACTION=capabilities RTT=12ms SCRIPTS=2 TARGET=10.0.0.9:7443 TLS=full"}},
      {answer(200, "OK", R"({"status":"ok","host":"web-01.example.com","tags":{}})"),
       R"({"host":"web-01","reported_hostname":"web-01.example.com","rtt":"12ms","state":"ok","status":"ok","tags":{}})",
       HostState::ok,
       {"I ACTION=capabilities RTT=12ms SCRIPTS=0 TARGET=10.0.0.9:7443 TLS=full"}},
      // 403 is not "forbidden: ...": the status line passes through the rewrite.
      {answer(403, "Forbidden", R"({"error":"serial mismatch"})"),
       err_json("403 Forbidden", "denied"),
       HostState::denied,
       {err_line("403 Forbidden")}},
      {answer(413, "Content Too Large", ""),
       err_json("413 Content Too Large", "error"),
       HostState::error,
       {err_line("413 Content Too Large")}},
      {answer(500, "Internal Server Error", ""),
       err_json("500 Internal Server Error", "error"),
       HostState::error,
       {err_line("500 Internal Server Error")}},
      {failure(ErrorKind::tls, "handshake failure"),
       err_json(kTls, "error"),
       HostState::error,
       {err_line(kTls)}},
      {failure(ErrorKind::refused, "connection refused"),
       err_json(kRefused, "unreachable"),
       HostState::unreachable,
       {err_line(kRefused)}},
  };
  check_rows(rows, [](const AgentReply& reply) { return capabilities_result("web-01", reply); });
}

TEST_CASE("fetch_result: 404 is unknown without a log line; running, done, failures", "[engine]") {
  const std::string R = kReqid;
  auto err_line = [&](const std::string& error) {
    return "E ACTION=result ERROR=\"" + error + "\" REQID=" + R + " RTT=12ms TARGET=10.0.0.9:7443";
  };
  auto ok_line = [&](const std::string& status) {
    return "I ACTION=result REQID=" + R + " RTT=12ms STATUS=" + status +
           " TARGET=10.0.0.9:7443 TLS=full";
  };
  auto err_json = [&](const std::string& error, const std::string& state) {
    return R"({"error":")" + error + R"(","host":"web-01","reqid":")" + R +
           R"(","rtt":"12ms","state":")" + state + R"(","status":"error"})";
  };
  const std::vector<Row> rows = {
      {answer(404, "Not Found", R"({"status":"error","error":"not found"})"),
       R"({"host":"web-01","reqid":")" + R + R"(","rtt":"12ms","state":"ok","status":"unknown"})",
       HostState::ok,
       {}},
      {answer(200, "OK", R"({"status":"running","reqid":")" + R + R"("})"),
       R"({"host":"web-01","reqid":")" + R + R"(","rtt":"12ms","state":"ok","status":"running"})",
       HostState::ok,
       {ok_line("running")}},
      {answer(200, "OK",
              R"({"status":"done","exit":0,"stdout":"x\n","stderr":"","reqid":")" + R +
                  R"(","host":"web-01.example.com"})"),
       R"({"exit":0,"host":"web-01","reported_hostname":"web-01.example.com","reqid":")" + R +
           R"(","rtt":"12ms","state":"ok","status":"done","stderr":"","stdout":"x\n"})",
       HostState::ok,
       {ok_line("done")}},
      {answer(403, "Forbidden", R"({"error":"serial mismatch"})"),
       err_json("forbidden: serial mismatch", "denied"),
       HostState::denied,
       {err_line("forbidden: serial mismatch")}},
      {answer(403, "Forbidden", ""),
       err_json("forbidden: 403 Forbidden", "denied"),
       HostState::denied,
       {err_line("forbidden: 403 Forbidden")}},
      {answer(500, "Internal Server Error", ""),
       err_json("500 Internal Server Error", "error"),
       HostState::error,
       {err_line("500 Internal Server Error")}},
      {failure(ErrorKind::refused, "connection refused"),
       err_json(kRefused, "unreachable"),
       HostState::unreachable,
       {err_line(kRefused)}},
      {failure(ErrorKind::read_timeout, "read timeout"),
       err_json(kTimedOut, "timeout"),
       HostState::timeout,
       {err_line(kTimedOut)}},
  };
  check_rows(rows, [&](const AgentReply& reply) { return fetch_result("web-01", reply, R); });
}

TEST_CASE("rotate_result: exit defaults from status; failures have exit -1", "[engine]") {
  auto err_json = [](const std::string& error, const std::string& state) {
    return R"({"error":")" + error + R"(","exit":-1,"host":"web-01","rtt":"12ms","state":")" +
           state + R"(","status":"error"})";
  };
  const std::vector<Row> rows = {
      {answer(200, "OK", R"({"status":"ok","action":"add","serial":"7f3a9c","dispatcher":"d1"})"),
       R"({"action":"add","dispatcher":"d1","exit":0,"host":"web-01","rtt":"12ms","serial":"7f3a9c","state":"ok","status":"ok"})",
       HostState::ok,
       {}},
      {answer(200, "OK", R"({"status":"error","error":"invalid serial"})"),
       R"({"error":"invalid serial","exit":-1,"host":"web-01","rtt":"12ms","state":"error","status":"error"})",
       HostState::error,
       {}},
      {answer(200, "OK", R"({})"),
       R"({"exit":-1,"host":"web-01","rtt":"12ms","state":"error"})",
       HostState::error,
       {}},
      // An exit the agent sent is kept.
      {answer(200, "OK", R"({"status":"ok","exit":0,"host":"web-01.example.com"})"),
       R"({"exit":0,"host":"web-01","reported_hostname":"web-01.example.com","rtt":"12ms","state":"ok","status":"ok"})",
       HostState::ok,
       {}},
      {answer(500, "Internal Server Error", ""),
       err_json("500 Internal Server Error", "error"),
       HostState::error,
       {}},
      {failure(ErrorKind::refused, "connection refused"),
       err_json(kRefused, "unreachable"),
       HostState::unreachable,
       {}},
      {failure(ErrorKind::timeout, "connection timed out"),
       err_json(kTimedOut, "timeout"),
       HostState::timeout,
       {}},
  };
  check_rows(rows, [](const AgentReply& reply) { return rotate_result("web-01", reply); });
}

TEST_CASE("results pass an agent's answer through: every member, in its order", "[engine]") {
  // A Perl agent sends its members in any order, and may send members we do not know, or
  // `exit` as a string: the result keeps them all where they were, adds ours after them (the
  // agent's `host` is replaced in place), and reads what it needs leniently.
  CapturedLog capture;
  RunSpec spec;
  spec.script = "backup";
  spec.reqid = kReqid;
  struct Row {
    std::function<HostResult(const AgentReply&)> build;
    std::string body;
    std::string json; // results_json_array of the one result, byte for byte
    std::vector<std::string> log;
  };
  const std::string R = kReqid;
  const Row rows[] = {
      {[&](const AgentReply& a) { return run_result("db-01", a, spec, 60); },
       R"({"stdout":"x\n","zeta":1,"exit":"3","host":"db-01.example.com","extra":{"b":[1,2],"a":null},"stderr":"","error":5,"script":"backup"})",
       R"([{"stdout":"x\n","zeta":1,"exit":"3","host":"db-01","extra":{"b":[1,2],"a":null},"stderr":"","error":5,"script":"backup","rtt":"12ms","reqid":")" +
           R + R"(","reported_hostname":"db-01.example.com","state":"ok"}])",
       {"I ACTION=run EXIT=3 REQID=" + R +
        " RTT=12ms SCRIPT=backup TARGET=10.0.0.9:7443 TLS=full"}},
      {[](const AgentReply& a) { return ping_result("web-01", a, "p1"); },
       R"({"reqid":"p1","staged":0,"status":"ok","version":"0.12.3","host":"web-01","expiry":"Feb 27 04:17:27 2029 GMT","x-agent":"perl"})",
       R"([{"reqid":"p1","staged":0,"status":"ok","version":"0.12.3","host":"web-01","expiry":"Feb 27 04:17:27 2029 GMT","x-agent":"perl","rtt":"12ms","state":"ok"}])",
       {"I ACTION=ping REQID=p1 RESULT=ok RTT=12ms TARGET=10.0.0.9:7443 TLS=full"}},
      {[](const AgentReply& a) { return capabilities_result("web-01", a); },
       R"({"scripts":[{"name":"a"},"junk",3],"status":"ok","tags":[],"host":7})",
       R"([{"scripts":[{"name":"a"},"junk",3],"status":"ok","tags":[],"host":"web-01","rtt":"12ms","state":"ok"}])",
       {"I ACTION=capabilities RTT=12ms SCRIPTS=3 TARGET=10.0.0.9:7443 TLS=full"}},
      {[&](const AgentReply& a) { return fetch_result("web-01", a, R); },
       R"({"exit":0,"status":"done","owner":"d1"})",
       R"([{"exit":0,"status":"done","owner":"d1","rtt":"12ms","reqid":")" + R +
           R"(","host":"web-01","state":"ok"}])",
       {"I ACTION=result REQID=" + R + " RTT=12ms STATUS=done TARGET=10.0.0.9:7443 TLS=full"}},
      // Without a status the record is logged as unknown; a status of another type too.
      {[&](const AgentReply& a) { return fetch_result("web-01", a, R); },
       R"({"status":1})",
       R"([{"status":1,"rtt":"12ms","reqid":")" + R + R"(","host":"web-01","state":"ok"}])",
       {"I ACTION=result REQID=" + R + " RTT=12ms STATUS=unknown TARGET=10.0.0.9:7443 TLS=full"}},
      {[](const AgentReply& a) { return rotate_result("web-01", a); },
       R"({"serial":"7f","status":"ok","dispatcher":"d1","action":"add","exit":"0"})",
       R"([{"serial":"7f","status":"ok","dispatcher":"d1","action":"add","exit":"0","rtt":"12ms","host":"web-01","state":"ok"}])",
       {}},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    Results results;
    results.push_back(r.build(answer(200, "OK", r.body)));
    CHECK(results_json_array(results) == r.json);
    CHECK(take_lines() == r.log);
  }
}
