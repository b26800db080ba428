// Tests for src/proto/agent_wire.cpp (tag [proto]): the 7443 bodies byte for byte (in our key
// order), the agent's loose reading of requests, and the dispatcher's reading of replies.
#include <catch2/catch.hpp>

#include "proto/agent_wire.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::proto;

namespace {
json::Document doc(const std::string& text) {
  auto d = json::parse(text);
  REQUIRE(d.ok());
  return std::move(*d);
}
} // namespace

TEST_CASE("fixed error bodies", "[proto]") {
  struct Row {
    std::string got, want;
  };
  const Row rows[] = {
      {body::not_found(), R"({"error":"not found"})"},
      {body::empty_request(), R"({"error":"empty request"})"},
      {body::too_many_headers(), R"({"error":"too many headers"})"},
      {body::request_too_large(), R"({"error":"request too large"})"},
      {body::revoked(), R"({"error":"certificate revoked"})"},
      {body::serial_mismatch(), R"({"error":"serial mismatch","status":"forbidden"})"},
      {body::forbidden(), R"({"error":"forbidden"})"},
      {body::not_authorised(), R"({"error":"not authorised"})"},
      {body::not_authorised("denied"), R"({"error":"not authorised: denied"})"},
  };
  for (const auto& r : rows)
    CHECK(r.got == r.want);
}

TEST_CASE("parse_run_request reads bodies as the original does", "[proto]") {
  struct Row {
    const char* body;
    RunRequestError error;
    const char* script;
    std::vector<std::string> args;
    const char* reqid;
    bool async;
  };
  const Row rows[] = {
      {R"({"script":"noop","args":["a","b c"],"reqid":"r1"})",
       RunRequestError::none,
       "noop",
       {"a", "b c"},
       "r1",
       false},
      {R"({"script":"noop"})", RunRequestError::none, "noop", {}, "", false},
      {R"({"script":"noop","args":null})", RunRequestError::none, "noop", {}, "", false},
      {R"({"script":"noop","async":true,"reqid":"x"})",
       RunRequestError::none,
       "noop",
       {},
       "x",
       true},
      {R"({"script":"noop","async":"yes"})", RunRequestError::none, "noop", {}, "", true},
      {R"({"script":"noop","async":0})", RunRequestError::none, "noop", {}, "", false},
      {R"({"script":"noop","async":"0"})", RunRequestError::none, "noop", {}, "", false},
      {R"({"script":"noop","async":false})", RunRequestError::none, "noop", {}, "", false},
      // Scalars as Perl stringifies them.
      {R"({"script":5,"args":[1,2.5,true,false,null,"x"],"reqid":7})",
       RunRequestError::none,
       "5",
       {"1", "2.5", "1", "0", "", "x"},
       "7",
       false},
      {R"({"script":["x"]})", RunRequestError::none, "", {}, "", false},
      {R"({"script":"noop","args":"a b","reqid":"r1"})",
       RunRequestError::args_not_array,
       "noop",
       {},
       "r1",
       false},
      {R"({"script":"noop","args":{"a":1},"reqid":"r1"})",
       RunRequestError::args_not_array,
       "noop",
       {},
       "r1",
       false},
      {R"({"script":"noop","args":[["x"]],"reqid":"r2"})",
       RunRequestError::args_not_strings,
       "noop",
       {},
       "r2",
       false},
      {R"({"script":"noop","args":["ok","a\u0000b"],"reqid":"r3"})",
       RunRequestError::args_with_nul,
       "noop",
       {},
       "r3",
       false},
      {R"({"script":"noop","args":["\u0000"]})",
       RunRequestError::args_with_nul,
       "noop",
       {},
       "",
       false},
      {R"(not json)", RunRequestError::invalid_json, "", {}, "", false},
      {R"(["script"])", RunRequestError::invalid_json, "", {}, "", false},
      {R"("noop")", RunRequestError::invalid_json, "", {}, "", false},
      {R"()", RunRequestError::invalid_json, "", {}, "", false},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto p = parse_run_request(r.body);
    CHECK(p.error == r.error);
    CHECK(p.request.script == r.script);
    CHECK(p.request.args == r.args);
    CHECK(p.request.reqid == r.reqid);
    CHECK(p.request.async == r.async);
  }
}

TEST_CASE("run request and result bodies", "[proto]") {
  RunRequest req{"echo-args", {"a;b", "$(x)"}, "00000000deadbeef", "alice", "t0k", false};
  CHECK(req.to_json() ==
        R"x({"script":"echo-args","args":["a;b","$(x)"],"reqid":"00000000deadbeef",)x"
        R"("username":"alice","token":"t0k"})");
  req.async = true;
  CHECK(req.to_json().find(R"("async":true)") != std::string::npos);
  auto back = parse_run_request(req.to_json());
  CHECK(back.error == RunRequestError::none);
  CHECK(back.request.args == req.args);
  CHECK(back.request.async);
  CHECK_FALSE(back.request.stream);
  // Live output (ours): "stream":true only when asked, read by Perl truth.
  req.async = false;
  req.stream = true;
  CHECK(req.to_json().find(R"("stream":true)") != std::string::npos);
  CHECK(parse_run_request(req.to_json()).request.stream);
  CHECK(parse_run_request(R"({"script":"x","stream":"1"})").request.stream);
  CHECK_FALSE(parse_run_request(R"({"script":"x","stream":"0"})").request.stream);

  struct Row {
    RunResult r;
    const char* want;
  };
  const Row rows[] = {
      {{"noop", 0, "ok\n", "", "abc", {}, false, false, {}},
       R"({"script":"noop","exit":0,"stdout":"ok\n","stderr":"","reqid":"abc"})"},
      {{"x", -1, {}, {}, "r", "script not permitted", false, false, {}},
       R"({"script":"x","exit":-1,"reqid":"r","error":"script not permitted"})"},
      {{{}, -1, {}, {}, {}, "invalid JSON", false, false, {}},
       R"({"exit":-1,"error":"invalid JSON"})"},
      {{"s", 126, "", "", "r", "script timed out after 2s", true, true, {}},
       R"({"script":"s","exit":126,"stdout":"","stderr":"","reqid":"r",)"
       R"("error":"script timed out after 2s","truncated":true,"timed_out":true})"},
  };
  for (const auto& row : rows) {
    CHECK(row.r.to_json() == row.want);
    auto parsed = RunResult::from_json(doc(row.want));
    REQUIRE(parsed.ok());
    CHECK(parsed->to_json() == row.want);
  }
}

TEST_CASE("replies are read whatever the key order, and wrong types name the field", "[proto]") {
  // Key orders as a Perl agent may send them (transcripts 11 and 13).
  auto ping = PingReply::from_json(
      doc(R"({"version":"0.12.3","host":"vm","expiry":"Feb 27 04:17:27 2029 GMT","status":"ok",)"
          R"("reqid":"00000000deadbeef","staged":false})"));
  REQUIRE(ping.ok());
  CHECK(ping->status == "ok");
  CHECK(ping->host == "vm");
  CHECK(ping->expiry == "Feb 27 04:17:27 2029 GMT");
  CHECK_FALSE(ping->staged);
  CHECK(ping->reqid == "00000000deadbeef");

  auto run = RunResult::from_json(
      doc(R"({"reqid":"abc","exit":0,"stdout":"ok\n","script":"noop","stderr":""})"));
  REQUIRE(run.ok());
  CHECK(run->exit == 0);
  CHECK(*run->out == "ok\n");

  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad bad[] = {
      {R"({"exit":"zero"})", "exit"},
      {R"({"exit":0,"stdout":5})", "stdout"},
      {R"([1])", "expected a JSON object"},
  };
  for (const auto& b : bad) {
    auto r = RunResult::from_json(doc(b.text));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.message(), Catch::Contains(b.message));
  }
}

TEST_CASE("capabilities reply round trip with schema", "[proto]") {
  CapabilitiesReply c;
  c.host = "vm";
  c.version = "0.12.3";
  c.tags = {{"env", "prod"}, {"role", "db"}};
  c.scripts.push_back({"check-disk", "/opt/s/check-disk.sh", true, "default",
                       std::string(R"({"type":"object"})"), std::string("sha256:0123456789ab")});
  c.scripts.push_back({"noop", "/opt/s/noop.sh", false, "web", {}, {}});
  const std::string want =
      R"({"status":"ok","host":"vm","version":"0.12.3","tags":{"env":"prod","role":"db"},)"
      R"("scripts":[{"name":"check-disk","path":"/opt/s/check-disk.sh","executable":true,)"
      R"("profile":"default","schema":{"type":"object"},"schema_version":"sha256:0123456789ab"},)"
      R"({"name":"noop","path":"/opt/s/noop.sh","executable":false,"profile":"web"}]})";
  CHECK(c.to_json() == want);
  auto back = CapabilitiesReply::from_json(doc(want));
  REQUIRE(back.ok());
  CHECK(back->to_json() == want);

  CapabilitiesReply empty;
  empty.host = "h";
  empty.version = "v";
  CHECK(empty.to_json() == R"({"status":"ok","host":"h","version":"v","tags":{},"scripts":[]})");
}

TEST_CASE("async replies and result records", "[proto]") {
  CHECK(AsyncReply{"noop", "accepted", "asyncr1", {}}.to_json() ==
        R"({"script":"noop","status":"accepted","reqid":"asyncr1"})");
  CHECK(AsyncReply{"noop", "busy", "r", std::string(kAsyncBusy)}.to_json() ==
        R"({"script":"noop","status":"busy","reqid":"r","error":"script already running"})");
  CHECK(result_unknown_json("abc123") == R"({"status":"unknown","reqid":"abc123"})");

  ResultRecord running{"r1", "running", "noop", "vm", "2026-11-25T04:21:08Z", {}, {}, {},
                       {},   {},        false,  false};
  CHECK(running.to_json() == R"({"reqid":"r1","status":"running","script":"noop","owner":"vm",)"
                             R"("started":"2026-11-25T04:21:08Z"})");
  ResultRecord done = running;
  done.status = "done";
  done.finished = "2026-11-25T04:21:09Z";
  done.exit = 3;
  done.out = "ok\n";
  done.err = "";
  const std::string want = R"({"reqid":"r1","status":"done","script":"noop","owner":"vm",)"
                           R"("started":"2026-11-25T04:21:08Z","finished":"2026-11-25T04:21:09Z",)"
                           R"("exit":3,"stdout":"ok\n","stderr":""})";
  CHECK(done.to_json() == want);
  auto back = ResultRecord::from_json(doc(want));
  REQUIRE(back.ok());
  CHECK(back->to_json() == want);
  auto unknown = ResultRecord::from_json(doc(result_unknown_json("abc")));
  REQUIRE(unknown.ok());
  CHECK(unknown->status == "unknown");
  CHECK_FALSE(unknown->exit.has_value());
}

TEST_CASE("lenient request readers", "[proto]") {
  struct Row {
    const char* body;
    const char* reqid;
  };
  const Row rows[] = {
      {R"({"reqid":"abc"})", "abc"}, {"", ""},      {"garbage", ""}, {R"({"reqid":12})", "12"},
      {R"({"reqid":null})", ""},     {R"([])", ""},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    CHECK(PingRequest::parse(r.body).reqid == r.reqid);
    CHECK(RenewRequest::parse(r.body).reqid == r.reqid);
  }
  auto rot = RotateRequest::parse(R"({"serial":255,"token":"t"})");
  CHECK(rot.serial == "255");
  CHECK(rot.action == "add");
  CHECK(rot.token == "t");
  CHECK(RotateRequest::parse(R"({"serial":"ab","action":"remove"})").action == "remove");
  CHECK(RotateRequest::parse("nope").serial.empty());
  CHECK(RotateRequest{"7f3a9c", "add", ""}.to_json() == R"({"serial":"7f3a9c","action":"add"})");

  auto rc = RenewCompleteRequest::parse(R"({"cert":"PEM","ca":"CA","reqid":"r"})");
  CHECK(rc.cert == "PEM");
  CHECK(rc.ca == "CA");
  CHECK(rc.reqid == "r");
  CHECK(RenewCompleteRequest{"C", "A", "r"}.to_json() == R"({"cert":"C","ca":"A","reqid":"r"})");
}

TEST_CASE("rotate and renew replies", "[proto]") {
  RotateReply ok{"ok", "add", "7f3a9c", "disp-1", {}};
  CHECK(ok.to_json() ==
        R"({"status":"ok","action":"add","serial":"7f3a9c","dispatcher":"disp-1"})");
  RotateReply err{"error", {}, {}, {}, "serial required"};
  CHECK(err.to_json() == R"({"status":"error","error":"serial required"})");
  auto back = RotateReply::from_json(doc(ok.to_json()));
  REQUIRE(back.ok());
  CHECK(*back->dispatcher == "disp-1");

  CHECK(RenewReply{"ok", "PEM", "r", {}}.to_json() == R"({"status":"ok","csr":"PEM","reqid":"r"})");
  CHECK(RenewReply{"error", {}, {}, "agent key not available"}.to_json() ==
        R"({"status":"error","error":"agent key not available"})");
  CHECK(RenewCompleteReply{"ok", "r", true, {}}.to_json() ==
        R"({"status":"ok","reqid":"r","staged":true})");
  CHECK(RenewCompleteReply{"error", {}, false, "cert required"}.to_json() ==
        R"({"status":"error","error":"cert required"})");
  auto rcr = RenewCompleteReply::from_json(doc(R"({"staged":1,"status":"ok","reqid":"r"})"));
  REQUIRE(rcr.ok());
  CHECK(rcr->staged);
}

TEST_CASE("the auth hook's refusal: written and recognised by the same words", "[proto]") {
  CHECK(not_authorised_error("bad token") == "not authorised: bad token");
  CHECK(body::not_authorised("bad token") == R"({"error":"not authorised: bad token"})");
  for (const char* error : {"not authorised", "not authorised: bad token", "not authorised: "}) {
    INFO(error);
    CHECK(is_not_authorised(error));
  }
  // The agent's words exactly, as the original compares them.
  for (const char* error :
       {"Not authorised", "script not authorised", "not authorized", "not author", ""}) {
    INFO(error);
    CHECK_FALSE(is_not_authorised(error));
  }
}

TEST_CASE("replies read leniently: a member of the wrong type counts as absent", "[proto]") {
  // Strictly each of these fails naming the field; leniently (the dispatcher reading an agent)
  // the member is left at its default and the rest is read.
  auto run = RunResult::from_json(
      doc(R"({"script":5,"exit":0,"stdout":["x"],"stderr":"e","error":{},"host":7,"reqid":"r"})"),
      Reading::lenient);
  REQUIRE(run.ok());
  CHECK_FALSE(run->script);
  CHECK(run->exit == 0);
  CHECK_FALSE(run->out);
  CHECK(*run->err == "e");
  CHECK_FALSE(run->error);
  CHECK_FALSE(run->host);
  CHECK(*run->reqid == "r");
  CHECK_FALSE(RunResult::from_json(doc(R"({"script":5})")).ok());

  auto ping = PingReply::from_json(doc(R"({"status":1,"host":"vm","expiry":null,"staged":"0"})"),
                                   Reading::lenient);
  REQUIRE(ping.ok());
  CHECK(ping->status.empty());
  CHECK(ping->host == "vm");
  CHECK(ping->expiry.empty());
  CHECK_FALSE(ping->staged);

  auto async =
      AsyncReply::from_json(doc(R"({"status":"busy","error":false,"script":1})"), Reading::lenient);
  REQUIRE(async.ok());
  CHECK(async->status == "busy");
  CHECK_FALSE(async->error);
  CHECK(async->script.empty());

  auto rotate = RotateReply::from_json(doc(R"({"status":["ok"],"serial":"ab"})"), Reading::lenient);
  REQUIRE(rotate.ok());
  CHECK(rotate->status.empty());
  CHECK(*rotate->serial == "ab");
  CHECK_THAT(RotateReply::from_json(doc(R"({"status":["ok"]})")).message(),
             Catch::Contains("status"));

  // The 403 body: an absent error is told from an empty one (Perl's `//`).
  CHECK_FALSE(ErrorReply::from_json(doc(R"({"status":"denied"})"), Reading::lenient)->error);
  CHECK(*ErrorReply::from_json(doc(R"({"error":""})"), Reading::lenient)->error == "");
  CHECK_FALSE(ErrorReply::from_json(doc(R"({"error":5})"), Reading::lenient)->error);
  CHECK_FALSE(ErrorReply::from_json(doc(R"({"error":5})")).ok());

  // Neither reading accepts a non-object.
  CHECK_FALSE(PingReply::from_json(doc("[]"), Reading::lenient).ok());
}

TEST_CASE("lenient exit: as the original numifies it", "[proto]") {
  struct Row {
    const char* body;
    int64_t exit;
  };
  const Row rows[] = {
      {R"({"exit":3})", 3},
      {R"({"exit":"3"})", 3},
      {R"({"exit":" 4 "})", 4},
      {R"({"exit":2.7})", 2},
      {R"({"exit":-2.7})", -2},
      {R"({"exit":1e300})", INT64_MAX},
      {R"({"exit":-1e300})", INT64_MIN},
      {R"({"exit":"abc"})", -1},
      {R"({"exit":true})", -1},
      {R"({"exit":null})", -1},
      {R"({"exit":[0]})", -1},
      {R"({})", -1},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto run = RunResult::from_json(doc(r.body), Reading::lenient);
    REQUIRE(run.ok());
    CHECK(run->exit == r.exit);
  }
  // Strictly, only integers (and integral doubles) are an exit.
  CHECK(RunResult::from_json(doc(R"({"exit":3.0})"))->exit == 3);
  CHECK_FALSE(RunResult::from_json(doc(R"({"exit":"3"})")).ok());
  CHECK_FALSE(RunResult::from_json(doc(R"({"exit":2.7})")).ok());
}

TEST_CASE("lenient capabilities: every scripts entry counts, bad tags are skipped", "[proto]") {
  auto caps = CapabilitiesReply::from_json(
      doc(R"({"status":"ok","host":"vm","tags":{"env":"prod","bad":[1],"n":5},)"
          R"("scripts":[{"name":"a","executable":1},"junk",{"name":7}]})"),
      Reading::lenient);
  REQUIRE(caps.ok());
  CHECK(caps->tags == std::map<std::string, std::string>{{"env", "prod"}, {"n", "5"}});
  REQUIRE(caps->scripts.size() == 3);
  CHECK(caps->scripts[0].name == "a");
  CHECK(caps->scripts[0].executable);
  CHECK(caps->scripts[1].name.empty());
  CHECK(caps->scripts[2].name.empty());
  auto odd = CapabilitiesReply::from_json(doc(R"({"tags":"x","scripts":{}})"), Reading::lenient);
  REQUIRE(odd.ok());
  CHECK(odd->tags.empty());
  CHECK(odd->scripts.empty());
  // Strictly, the first wrong member is the error.
  struct Bad {
    const char* text;
    const char* message;
  };
  const Bad bad[] = {
      {R"({"tags":"x","scripts":{}})", "field 'tags' must be an object"},
      {R"({"tags":{"a":[1]}})", "field 'tags' must be an object of strings"},
      {R"({"scripts":{}})", "field 'scripts' must be an array"},
      {R"({"scripts":["junk"]})", "field 'scripts' must be an array of objects"},
      {R"({"scripts":[{"name":7}]})", "field 'name' must be a string"},
      {R"({"host":1,"scripts":[{"name":7}]})", "field 'host' must be a string"},
  };
  for (const auto& b : bad) {
    INFO(b.text);
    auto r = CapabilitiesReply::from_json(doc(b.text));
    REQUIRE_FALSE(r.ok());
    CHECK(r.message() == b.message);
  }
}

TEST_CASE("a result record without a status is unknown; any reply's reported host", "[proto]") {
  CHECK(ResultRecord::from_json(doc(R"({"reqid":"r"})"), Reading::lenient)->status == "unknown");
  CHECK(ResultRecord::from_json(doc(R"({"status":""})"))->status.empty());
  CHECK(ResultRecord::from_json(doc(R"({"status":5})"), Reading::lenient)->status == "unknown");
  auto rec = ResultRecord::from_json(doc(R"({"status":"done","exit":"0"})"), Reading::lenient);
  REQUIRE(rec.ok());
  CHECK(*rec->exit == 0);
  CHECK_FALSE(ResultRecord::from_json(doc(R"({"status":"done","exit":"0"})")).ok());
  CHECK(reported_host(doc(R"({"status":"done","host":"vm"})")) == "vm");
  CHECK(reported_host(doc(R"({"host":""})")) == "");
  CHECK_FALSE(reported_host(doc(R"({"host":5})")));
  CHECK_FALSE(reported_host(doc(R"({"status":"ok"})")));
  CHECK_FALSE(reported_host(doc(R"(["host"])")));
}

TEST_CASE("run chunks: written compact, read only when they are chunks", "[proto]") {
  RunChunk c{"stderr", "a\"b\n", 7};
  CHECK(c.to_json() == R"({"stream":"stderr","data":"a\"b\n","ms":7})");
  struct Row {
    const char* text;
    bool chunk;
  };
  const Row rows[] = {
      {R"({"stream":"stdout","data":"x","ms":1})", true},
      {R"({"stream":"stdout","data":"x"})", true},
      {R"({"stream":"stdin","data":"x"})", false},
      {R"({"stream":"stdout","data":1})", false},
      {R"({"stream":"stdout"})", false},
      {R"({"script":"s","exit":0,"stdout":"x","stderr":"","reqid":"r"})", false},
      {R"(["stream"])", false},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    auto doc = json::parse(r.text);
    REQUIRE(doc.ok());
    CHECK(RunChunk::from_json(*doc).has_value() == r.chunk);
  }
}
