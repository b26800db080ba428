// Tests for src/engine/format.cpp (tag [engine]): the CLI's human output for run, ping, async
// submit and status, byte for byte (dispatcher-and-api §4.3, §4.4, §4.6; acceptance rows 2-5 of
// §12; spec/transcripts/09-cli-reference.txt).
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/format.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::engine;

namespace {

// Parsed result objects, kept alive while the formatter reads them.
struct Docs {
  std::vector<std::unique_ptr<json::Document>> docs;
  std::vector<const json::Value*> ptrs;

  explicit Docs(const std::vector<std::string>& texts) {
    for (const auto& t : texts) {
      auto d = std::make_unique<json::Document>();
      d->Parse(t.data(), t.size());
      INFO(t);
      REQUIRE(d->IsObject());
      ptrs.push_back(d.get());
      docs.push_back(std::move(d));
    }
  }
};

json::Document parse(const std::string& text) {
  json::Document d;
  d.Parse(text.data(), text.size());
  INFO(text);
  REQUIRE(d.IsObject());
  return d;
}

} // namespace

TEST_CASE("run results: header, ERROR, stdout and STDERR blocks", "[engine]") {
  struct Row {
    std::vector<std::string> results;
    std::string out;
  };
  const Row rows[] = {
      // The transcript's `run vm check-disk`.
      {{R"({"host":"vm","exit":0,"stdout":"Filesystem     1024-blocks\n/dev/vda 18% /\n","stderr":"","script":"check-disk","rtt":"42ms","reqid":"3e6976064d63d9ff"})"},
       "==> vm  [OK  exit:0  42ms  req:3e6976064d63d9ff]\n"
       "Filesystem     1024-blocks\n/dev/vda 18% /\n"},
      // A non-zero exit is FAIL; stderr is printed raw after "    STDERR: " (its own newline
      // kept, one added).
      {{R"({"rtt":"37ms","stderr":"failure detail\n","script":"fail","reqid":"2a33dcf40310f4d5","host":"vm","exit":3,"stdout":"about to fail\n"})"},
       "==> vm  [FAIL  exit:3  37ms  req:2a33dcf40310f4d5]\n"
       "about to fail\n"
       "    STDERR: failure detail\n\n"},
      // An agent refusal: exit -1 and the ERROR line.
      {{R"({"host":"vm","exit":-1,"error":"script not permitted","script":"x","rtt":"36ms","reqid":"146d235d6cde3c6a"})"},
       "==> vm  [FAIL  exit:-1  36ms  req:146d235d6cde3c6a]\n"
       "    ERROR: script not permitted\n"},
      // A missing exit counts as -1.
      {{R"({"host":"db-01","error":"no response from child","script":"x","reqid":"r1"})"},
       "==> db-01  [FAIL  exit:-1    req:r1]\n"
       "    ERROR: no response from child\n"},
      // stdout without a trailing newline gets one; stderr is printed as is.
      {{R"({"host":"h","exit":0,"stdout":"hello","stderr":"warn","rtt":"1ms","reqid":"r"})"},
       "==> h  [OK  exit:0  1ms  req:r]\nhello\n    STDERR: warn\n"},
      // Whitespace-only stdout/stderr and an empty error print nothing.
      {{R"({"host":"h","exit":0,"stdout":" \n\t\n","stderr":"\n","error":"","rtt":"1ms","reqid":"r"})"},
       "==> h  [OK  exit:0  1ms  req:r]\n"},
      // ERROR, then stdout, then STDERR.
      {{R"({"host":"h","exit":2,"stdout":"out\n","stderr":"err\n","error":"oops","rtt":"3ms","reqid":"r"})"},
       "==> h  [FAIL  exit:2  3ms  req:r]\n    ERROR: oops\nout\n    STDERR: err\n\n"},
      // The name the agent reported follows the host.
      {{R"({"host":"web-01","reported_hostname":"web-01.example.com","exit":0,"rtt":"9ms","reqid":"r"})"},
       "==> web-01 (web-01.example.com)  [OK  exit:0  9ms  req:r]\n"},
      // Several results, in the order given (completion order).
      {{R"({"host":"b","exit":0,"stdout":"B\n","rtt":"2ms","reqid":"r"})",
        R"({"host":"a","exit":1,"stdout":"A\n","rtt":"5ms","reqid":"r"})"},
       "==> b  [OK  exit:0  2ms  req:r]\nB\n==> a  [FAIL  exit:1  5ms  req:r]\nA\n"},
      {{}, ""},
  };
  for (const auto& r : rows) {
    Docs d(r.results);
    CHECK(format_run_results(d.ptrs) == r.out);
  }
}

TEST_CASE("ping table: header, 85 dashes, rows with defaults", "[engine]") {
  const std::string header =
      "HOST                            STATUS    RTT       CERT EXPIRY                   VERSION\n"
      "-------------------------------------------------------------------------------------\n";
  REQUIRE(header.size() == 90 + 86);
  struct Row {
    std::vector<std::string> results;
    std::string rows;
  };
  const Row rows[] = {
      // The transcript's `ping vm`.
      {{R"({"reqid":"b9186bcba84c8a3a","status":"ok","version":"0.12.3","expiry":"Feb 27 04:17:27 2029 GMT","host":"vm","staged":false,"rtt":"93ms"})"},
       "vm                              ok        93ms      Feb 27 04:17:27 2029 GMT      "
       "0.12.3\n"},
      // An error row: the error text is not shown; expiry and version default to "?".
      {{R"({"host":"db-02","status":"error","error":"host 'db-02' did not resolve - check the name or use an IP address","rtt":"5ms"})"},
       "db-02                           error     5ms       ?                             ?\n"},
      // No status: "error"; no rtt: "?".
      {{R"({"host":"nothing"})"},
       "nothing                         error     ?         ?                             ?\n"},
      {{R"({"host":"web-01","reported_hostname":"web-01.example.com","status":"ok","rtt":"7ms","expiry":"Jun  7 16:28:00 2028 GMT","version":"0.13.0"})"},
       "web-01 (web-01.example.com)     ok        7ms       Jun  7 16:28:00 2028 GMT      "
       "0.13.0\n"},
      // Columns are minimum widths; a long name is not cut.
      {{R"({"host":"a-very-long-agent-name-of-forty-chars-x","status":"ok","rtt":"1ms"})"},
       "a-very-long-agent-name-of-forty-chars-x  ok        1ms       ?                             "
       "?\n"},
      {{}, ""},
  };
  for (const auto& r : rows) {
    Docs d(r.results);
    CHECK(format_ping_results(d.ptrs) == header + r.rows);
  }
}

TEST_CASE("async submit: accepted, BUSY and ERROR lines with defaults, then the hint", "[engine]") {
  struct Row {
    std::vector<std::string> results;
    std::string lines;
  };
  const Row rows[] = {
      {{R"({"host":"h1","script":"s","status":"accepted","reqid":"R","rtt":"12ms"})",
        R"({"host":"h2","script":"s","status":"busy","error":"script already running","reqid":"R","rtt":"3ms"})",
        R"({"host":"h3","script":"s","status":"error","error":"forbidden: serial mismatch","reqid":"R","rtt":"4ms"})"},
       "==> h1  [accepted  12ms]\n"
       "==> h2  [BUSY: script already running]\n"
       "==> h3  [ERROR: forbidden: serial mismatch]\n"},
      // Defaults when the error is missing.
      {{R"({"host":"h2","status":"busy"})"}, "==> h2  [BUSY: already running]\n"},
      {{R"({"host":"h3","status":"error"})"}, "==> h3  [ERROR: submit failed]\n"},
      // No status at all (an agent that answered 200 with exit -1): an ERROR line.
      {{R"({"host":"h4","exit":-1,"error":"async not supported","rtt":"2ms"})"},
       "==> h4  [ERROR: async not supported]\n"},
      {{R"({"host":"h1","reported_hostname":"h1.example.com","status":"accepted","rtt":"12ms"})"},
       "==> h1 (h1.example.com)  [accepted  12ms]\n"},
      {{}, ""},
  };
  for (const auto& r : rows) {
    Docs d(r.results);
    CHECK(format_async_submit("0123456789abcdef", d.ptrs) ==
          "Submitted async run  req:0123456789abcdef\n" + r.lines +
              "Check progress with: ctrl-exec-dispatcher status 0123456789abcdef\n");
  }
}

// The original's code (bin/ctrl-exec-dispatcher _format_async_submit, 0.12.2) appends
// ` (<reported_hostname>)` to the host before choosing the line, so BUSY and ERROR lines carry
// it too; §4.3's template abbreviates this. The code is what scripts see (DOC≠CODE: code wins).
TEST_CASE("async submit: every line shows the reported name, as the original's code does",
          "[engine]") {
  Docs d({R"({"host":"h2","reported_hostname":"h2.example.com","status":"busy","error":"x"})",
          R"({"host":"h3","reported_hostname":"h3.example.com","exit":-1,"error":"y"})"});
  CHECK(format_async_submit("R", d.ptrs) == "Submitted async run  req:R\n"
                                            "==> h2 (h2.example.com)  [BUSY: x]\n"
                                            "==> h3 (h3.example.com)  [ERROR: y]\n"
                                            "Check progress with: ctrl-exec-dispatcher status R\n");
}

TEST_CASE("status: header, then per-host blocks sorted by name", "[engine]") {
  struct Row {
    std::string record;
    std::string out;
  };
  const Row rows[] = {
      // Every kind of host block, given out of order.
      {R"({"reqid":"0123456789abcdef","script":"deploy","mode":"async","complete":false,
           "hosts":{
             "web-2":{"status":"running"},
             "db":{"status":"done","exit":0,"stdout":"deployed\n","stderr":""},
             "web-10":{"status":"accepted","fetch_error":"host 'web-10' did not respond - connection timed out"},
             "web-3":{"status":"accepted"},
             "x-exp":{"status":"expired","error":"result no longer available"},
             "x-busy":{"status":"busy","error":"script already running"},
             "x-err":{"status":"error","error":"forbidden: serial mismatch"},
             "x-plain":{"status":"busy"}}})",
       "Request 0123456789abcdef  (script: deploy)  [PENDING]\n"
       "==> db  [done  exit:0]\n"
       "deployed\n"
       "==> web-10  [accepted]\n"
       "    (fetch pending: host 'web-10' did not respond - connection timed out)\n"
       "==> web-2  [running]\n"
       "==> web-3  [accepted]\n"
       "==> x-busy  [BUSY]\n"
       "    script already running\n"
       "==> x-err  [ERROR]\n"
       "    forbidden: serial mismatch\n"
       "==> x-exp  [EXPIRED]\n"
       "    result no longer available\n"
       "==> x-plain  [BUSY]\n"},
      // Complete; done with a failure, stdout without a newline and a stderr.
      {R"({"reqid":"R","script":"s","mode":"async","complete":true,
           "hosts":{"h1":{"status":"done","exit":3,"stdout":"partial","stderr":"boom\n"},
                    "h2":{"status":"done"}}})",
       "Request R  (script: s)  [COMPLETE]\n"
       "==> h1  [done  exit:3]\n"
       "partial\n"
       "    STDERR: boom\n\n"
       "==> h2  [done  exit:-1]\n"},
      // Running without a fetch error: no note.
      {R"({"reqid":"R","script":"s","complete":false,"hosts":{"h1":{"status":"running"}}})",
       "Request R  (script: s)  [PENDING]\n==> h1  [running]\n"},
      // A sync record (API-submitted) is rendered like run results.
      {R"({"reqid":"R","script":"s","mode":"sync","complete":true,
           "results":[{"host":"h1","exit":0,"stdout":"hi\n","stderr":"","rtt":"5ms","reqid":"R"},
                      {"host":"h2","exit":-1,"error":"script not permitted","rtt":"6ms","reqid":"R"}]})",
       "Request R  (script: s)  [COMPLETE]\n"
       "==> h1  [OK  exit:0  5ms  req:R]\n"
       "hi\n"
       "==> h2  [FAIL  exit:-1  6ms  req:R]\n"
       "    ERROR: script not permitted\n"},
  };
  for (const auto& r : rows) {
    INFO(r.record);
    json::Document rec = parse(r.record);
    CHECK(format_status(rec) == r.out);
  }
}
