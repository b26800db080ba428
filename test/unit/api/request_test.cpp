// Tests for src/api/request.cpp: what the API reads from a request, and its exact error bodies.
#include <catch2/catch.hpp>

#include "api/request.hpp"

using namespace cx;

TEST_CASE("error bodies are byte-exact", "[api]") {
  CHECK(api::error_body("bad request", "empty request") ==
        R"({"ok":false,"error":"bad request","detail":"empty request"})");
  CHECK(api::error_body("server error") == R"({"ok":false,"error":"server error"})");
  CHECK(api::denial_body("no auth hook configured", 1, false) ==
        R"({"ok":false,"error":"no auth hook configured","code":1})");
  CHECK(api::denial_body("hook exited 99", 99, false) ==
        R"({"ok":false,"error":"hook exited 99","code":99})");
  CHECK(api::denial_body("denied", 1, true) == R"({"ok":false,"error":"forbidden"})");
  CHECK(api::overload_body() ==
        R"({"ok":false,"error":"service unavailable","detail":"too many concurrent requests"})");
  CHECK(api::no_route_body("DELETE", "/health?x") ==
        R"({"ok":false,"error":"not found","detail":"no route for DELETE /health?x"})");
}

TEST_CASE("framing errors: 431, 413, empty and malformed requests", "[api]") {
  struct Row {
    std::string bytes;
    bool eof;
    int code;
    std::string body;
  };
  std::string many = "GET / HTTP/1.0\r\n";
  for (int i = 0; i < 33; ++i)
    many += "X-" + std::to_string(i) + ": v\r\n";
  const Row rows[] = {
      {many + "\r\n", false, 431,
       R"({"ok":false,"error":"request header fields too large","detail":"more than 32 header lines"})"},
      {"POST /run HTTP/1.0\r\nContent-Length: 2000000\r\n\r\n", false, 413,
       R"({"ok":false,"error":"payload too large","detail":"body exceeds 1048576 bytes"})"},
      {"", true, 400, R"({"ok":false,"error":"bad request","detail":"empty request"})"},
      {"\x01garbage junk here now\r\n\r\n", false, 400,
       R"({"ok":false,"error":"bad request","detail":"malformed request line"})"},
      {"POST /run HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", false, 400,
       R"({"ok":false,"error":"bad request","detail":"transfer-encoding not supported"})"},
  };
  for (const auto& r : rows) {
    INFO(r.bytes);
    http::RequestParser p;
    std::string_view in = r.bytes;
    auto prog = p.feed(in);
    if (r.eof)
      CHECK(p.finish() == http::ParseStatus::error);
    else
      CHECK(prog.status == http::ParseStatus::error);
    auto [code, body] = api::framing_error(p);
    CHECK(code == r.code);
    CHECK(body == r.body);
  }
}

TEST_CASE("gate token comes from a JSON object body only", "[api]") {
  struct Row {
    const char* body;
    const char* token;
  };
  const Row rows[] = {
      {R"({"token":"t0k"})", "t0k"}, {R"({"token":42})", "42"},
      {R"({"token":{"a":1}})", ""},  {R"( {"token":"t"})", ""}, // must start with '{'
      {R"({"token":"t")", ""},                                  // not JSON
      {R"(["token"])", ""},          {"", ""},
      {R"({"hosts":["a"]})", ""},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    CHECK(api::gate_token(r.body) == r.token);
  }
}

TEST_CASE("bearer token from the Authorization header", "[api]") {
  struct Row {
    const char* value; // nullptr: no header
    const char* token;
  };
  const Row rows[] = {
      {"Bearer abc", "abc"},
      {"bearer abc def", "abc"},
      {"Bearer   abc  ", "abc"},
      {"Basic YWxhZGRpbg==", ""},
      {"Bearer", ""},
      {"Bearerabc", ""},
      {nullptr, ""},
  };
  for (const auto& r : rows) {
    http::Request req;
    if (r.value) req.headers["authorization"] = r.value;
    INFO((r.value ? r.value : "(none)"));
    CHECK(api::bearer_token(req) == r.token);
  }
}

TEST_CASE("Idempotency-Key: absent, a key, or the 400 detail", "[api]") {
  struct Row {
    const char* value; // nullptr: no header
    std::optional<std::string> key;
    bool ok;
  };
  const Row rows[] = {
      {nullptr, std::nullopt, true},        {"order-42", std::string("order-42"), true},
      {"a b", std::string("a b"), true},    {"", std::nullopt, false},
      {"caf\xc3\xa9", std::nullopt, false},
  };
  for (const auto& r : rows) {
    http::Request req;
    if (r.value) req.headers["idempotency-key"] = r.value;
    INFO((r.value ? r.value : "(none)"));
    auto key = api::read_idempotency_key(req);
    REQUIRE(key.ok() == r.ok);
    if (r.ok) CHECK(*key == r.key);
    if (!r.ok)
      CHECK(key.message() == "Idempotency-Key must be 1 to 128 printable ASCII characters");
  }
  http::Request long_key;
  long_key.headers["idempotency-key"] = std::string(129, 'k');
  CHECK_FALSE(api::read_idempotency_key(long_key).ok());
}

TEST_CASE("ping and run bodies: the original's checks and messages, in order", "[api]") {
  struct Row {
    std::string body;
    std::string error; // "" when valid
  };
  std::string big = R"({"hosts":[)";
  for (int i = 0; i < 501; ++i)
    big += (i ? ",\"h" : "\"h") + std::to_string(i) + "\"";
  big += R"(],"script":"x"})";
  const Row rows[] = {
      {"", "request body required"},
      {"not json", "invalid JSON body"},
      {"[1]", "invalid JSON body"},
      {"{}", "hosts must be a non-empty array"},
      {R"({"hosts":[]})", "hosts must be a non-empty array"},
      {R"({"hosts":"web"})", "hosts must be a non-empty array"},
      {R"({"hosts":[{}]})", "hosts must be an array of strings"},
      {big, "too many hosts (max 500)"},
      {R"({"hosts":["a"]})", "script name required (alphanumeric and hyphens only)"},
      {R"({"hosts":["a"],"script":"bad name!"})",
       "script name required (alphanumeric and hyphens only)"},
      {R"({"hosts":["a"],"script":"x\n"})", "script name required (alphanumeric and hyphens only)"},
      {R"({"hosts":["a"],"script":"ok_name-1","args":"x"})", "args must be an array"},
      {R"({"hosts":["a"],"script":"ok","args":[[1]]})", "args must be an array of strings"},
      {R"({"hosts":["a"],"script":"ok","args":null})", ""},
      {R"({"hosts":["a","b:7450"],"script":"ok","args":["x y",2]})", ""},
  };
  for (const auto& r : rows) {
    INFO(r.body.substr(0, 80));
    auto doc = api::parse_body_object(r.body);
    std::string err;
    if (!doc.ok())
      err = doc.message();
    else if (auto in = api::read_run(*doc); !in.ok())
      err = in.message();
    CHECK(err == r.error);
  }
}

TEST_CASE("run body values", "[api]") {
  auto doc = api::parse_body_object(
      R"({"hosts":["a","b:7450"],"script":"echo-args","args":["x y",2],"username":"alice",)"
      R"("token":"t","async":"yes"})");
  REQUIRE(doc.ok());
  auto in = api::read_run(*doc);
  REQUIRE(in.ok());
  CHECK(in->hosts == std::vector<std::string>{"a", "b:7450"});
  CHECK(in->script == "echo-args");
  CHECK(in->args == std::vector<std::string>{"x y", "2"});
  CHECK(in->username == "alice");
  CHECK(in->token == "t");
  CHECK(in->async); // Perl truth
  struct Row {
    const char* async;
    bool want;
  };
  for (const Row& r : {Row{"true", true}, Row{"1", true}, Row{"\"0\"", false}, Row{"0", false},
                       Row{"false", false}, Row{"null", false}, Row{"\"\"", false}}) {
    auto d = api::parse_body_object(std::string(R"({"hosts":["a"],"script":"s","async":)") +
                                    r.async + "}");
    REQUIRE(d.ok());
    INFO(r.async);
    CHECK(api::read_run(*d)->async == r.want);
  }
}

TEST_CASE("ping and run bodies: tags and batches (ours)", "[api]") {
  struct Row {
    std::string body;
    std::string error; // "" when valid
  };
  std::string big = R"({"hosts":[)";
  for (int i = 0; i < 501; ++i)
    big += (i ? ",\"h" : "\"h") + std::to_string(i) + "\"";
  big += R"(],"script":"x","batch":500})";
  const Row rows[] = {
      {R"({"tags":{"role":"web"},"script":"x"})", ""},
      {R"({"tags":{"role":"web"},"hosts":[],"script":"x"})", ""},
      {R"({"tags":{"role":"web"},"hosts":null,"script":"x"})", ""},
      {R"({"tags":{"role":"web"},"hosts":"a","script":"x"})", "hosts must be an array"},
      {R"({"tags":{},"script":"x"})", R"(tags must be an object of strings, e.g. {"role":"web"})"},
      {R"({"tags":["role=web"],"script":"x"})",
       R"(tags must be an object of strings, e.g. {"role":"web"})"},
      {R"({"tags":{"role":1},"script":"x"})",
       R"(tags must be an object of strings, e.g. {"role":"web"})"},
      {R"({"tags":null,"hosts":[],"script":"x"})", "hosts must be a non-empty array"},
      {big, ""},
      {R"({"hosts":["a"],"script":"x","batch":"10%","batch_wait":1.5,"max_failures":"20%"})", ""},
      {R"({"hosts":["a"],"script":"x","batch":0})", "batch: '0': a batch is at least 1 host"},
      {R"({"hosts":["a"],"script":"x","batch":-1})",
       "batch must be an integer or a percentage string"},
      {R"({"hosts":["a"],"script":"x","batch":2.5})",
       "batch must be an integer or a percentage string"},
      {R"({"hosts":["a"],"script":"x","batch":"ten"})",
       "batch: 'ten' is not a count (N) or a percentage (N%)"},
      {R"({"hosts":["a"],"script":"x","batch_wait":1})", "batch_wait needs batch"},
      {R"({"hosts":["a"],"script":"x","max_failures":0})", "max_failures needs batch"},
      {R"({"hosts":["a"],"script":"x","batch":1,"batch_wait":"x"})",
       "batch_wait: 'x' is not a number of seconds"},
      {R"({"hosts":["a"],"script":"x","batch":1,"batch_wait":true})",
       "batch_wait must be a number of seconds"},
      {R"({"hosts":["a"],"script":"x","batch":1,"batch_wait":7200})",
       "batch_wait: '7200': the wait is 0 to 3600 seconds"},
      {R"({"hosts":["a"],"script":"x","batch":1,"max_failures":"101%"})",
       "max_failures: '101%': a percentage must be 0% to 100%"},
  };
  for (const auto& r : rows) {
    INFO(r.body.substr(0, 100));
    auto doc = api::parse_body_object(r.body);
    REQUIRE(doc.ok());
    auto in = api::read_run(*doc);
    CHECK((in.ok() ? std::string() : in.message()) == r.error);
  }
  auto doc = api::parse_body_object(
      R"({"tags":{"role":"web","env":"prod"},"batch":"25%","batch_wait":0.5,"max_failures":1})");
  REQUIRE(doc.ok());
  auto ping = api::read_ping(*doc);
  REQUIRE(ping.ok());
  CHECK(ping->hosts.empty());
  CHECK(*ping->target.tags == state::TagFilter{{"role", "web"}, {"env", "prod"}});
  CHECK(ping->target.rollout.batch->value == 25);
  CHECK(ping->target.rollout.batch->percent);
  CHECK(ping->target.rollout.wait_s == 0.5);
  CHECK(ping->target.rollout.max_failures->value == 1);
}

TEST_CASE("discovery body is optional and lenient", "[api]") {
  struct Row {
    const char* body;
    std::vector<std::string> hosts;
    const char* error;
  };
  const Row rows[] = {
      {"", {}, ""},
      {"not json", {}, ""},
      {"[]", {}, ""},
      {"{}", {}, ""},
      {R"({"hosts":[]})", {}, ""},
      {R"({"hosts":null})", {}, ""},
      {R"({"hosts":["a","b"]})", {"a", "b"}, ""},
      // Not a list at all: every agent, as the original's `ref eq 'ARRAY'` test reads it.
      {R"({"hosts":"a"})", {}, ""},
      {R"({"hosts":{"a":1}})", {}, ""},
      {R"({"hosts":[{}]})", {}, "hosts must be an array of strings"},
      // Each name once, in first-seen order: the answer is an object keyed by name.
      {R"({"hosts":["b","a","b"]})", {"b", "a"}, ""},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto in = api::read_discovery(r.body);
    CHECK(in.message() == r.error);
    if (in.ok()) CHECK(in->hosts == r.hosts);
  }
}
