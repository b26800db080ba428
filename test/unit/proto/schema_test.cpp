// Tests for src/proto/schema.cpp and src/proto/wire_schemas.cpp (tag [proto]): the validator's
// rules and messages, the OpenAPI rendering, and every agent reply struct of agent_wire.hpp
// against its description, so that struct and description cannot drift apart.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "proto/agent_wire.hpp"
#include "proto/schema.hpp"
#include "proto/wire_schemas.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::proto;

namespace {

json::Document doc(const std::string& text) {
  auto d = json::parse(text);
  INFO(text);
  REQUIRE(d.ok());
  return std::move(*d);
}

// "" when `text` is valid, else the validator's message.
std::string check(const Schema& s, const std::string& text) {
  return validate(s, doc(text)).message();
}

std::string openapi(const Schema& s) {
  json::Writer w;
  write_openapi(w, s);
  return w.str();
}

// The members of `body` that `schema` does not list.
std::vector<std::string> unlisted(const Schema& schema, const json::Value& body) {
  std::vector<std::string> out;
  for (const auto& m : body.GetObject()) {
    std::string name = m.name.GetString();
    bool listed = false;
    for (const Member& member : schema.members())
      listed = listed || member.name == name;
    if (!listed) out.push_back(name);
  }
  return out;
}

// A sync result with every member set.
RunResult full_run_result() {
  return RunResult{.script = "noop",
                   .exit = 3,
                   .out = "o",
                   .err = "e",
                   .reqid = "0123456789abcdef",
                   .error = "script timed out after 1s",
                   .truncated = true,
                   .timed_out = true,
                   .host = "peer"};
}

// The agent's HTTP-200 refusal of a run: {script, exit:-1, reqid, error}.
RunResult refusal(std::string_view error) {
  RunResult r;
  r.script = "noop";
  r.reqid = "r";
  r.error = std::string(error);
  return r;
}

const Definition kPair{
    "Pair", Schema::object({required("a", Schema::integer()), optional("b", Schema::string())})};

} // namespace

TEST_CASE("validate: types, required members, enums, constants and where it failed", "[proto]") {
  const Schema obj = Schema::object({
      required("exit", Schema::integer()),
      optional("out", Schema::string()),
      optional("staged", Schema::boolean()),
      optional("state", Schema::string().enums({"ok", "error"})),
      optional("ok", Schema::boolean().constant(true)),
      optional("name", Schema::string().constant("ctrl-exec-api")),
      optional("list", Schema::array(Schema::object({required("host", Schema::string())}))
                           .min_items(1)
                           .max_items(2)),
      optional("tags", Schema::object().values(Schema::string())),
      optional("pair", Schema::ref(kPair)),
      optional("either", Schema::one_of({Schema::array(Schema::string()),
                                         Schema::object().values(Schema::integer())})),
  });
  struct Row {
    const char* body;
    const char* error; // "" for valid
  };
  const Row rows[] = {
      {R"({"exit":0})", ""},
      {R"({"exit":-1,"out":"x","staged":false,"extra":[1]})", ""}, // unlisted members pass
      {R"({"exit":5.0})", ""},                                     // an integral double
      {R"({"exit":5.5})", "body.exit: expected integer, got number"},
      {R"({"exit":"0"})", "body.exit: expected integer, got string"},
      {R"({"exit":null})", "body.exit: expected integer, got null"},
      {R"({"exit":true})", "body.exit: expected integer, got boolean"},
      {R"({"out":"x"})", "body: missing required member 'exit'"},
      {R"([{"exit":0}])", "body: expected object, got array"},
      {R"({"exit":0,"out":1})", "body.out: expected string, got integer"},
      {R"({"exit":0,"staged":0})", "body.staged: expected boolean, got integer"},
      {R"({"exit":0,"state":"error"})", ""},
      {R"({"exit":0,"state":"sleepy"})", R"(body.state: "sleepy" is not one of ok, error)"},
      {R"({"exit":0,"state":1})", "body.state: expected string, got integer"},
      {R"({"exit":0,"ok":true})", ""},
      {R"({"exit":0,"ok":false})", "body.ok: expected true, got false"},
      {R"({"exit":0,"name":"ctrl-exec-api"})", ""},
      {R"({"exit":0,"name":"x"})", R"(body.name: expected "ctrl-exec-api", got "x")"},
      {R"({"exit":0,"list":[{"host":"a"},{"host":"b"}]})", ""},
      {R"({"exit":0,"list":[]})", "body.list: expected at least 1 items, got 0"},
      {R"({"exit":0,"list":[{"host":"a"},{"host":"b"},{"host":"c"}]})",
       "body.list: expected at most 2 items, got 3"},
      {R"({"exit":0,"list":[{"host":"a"},{}]})", "body.list[1]: missing required member 'host'"},
      {R"({"exit":0,"list":[{"host":"a"},{"host":2}]})",
       "body.list[1].host: expected string, got integer"},
      {R"({"exit":0,"tags":{"env":"prod","a.b":"c"}})", ""},
      {R"({"exit":0,"tags":{"env":"prod","a.b":3}})",
       R"(body.tags["a.b"]: expected string, got integer)"},
      {R"({"exit":0,"pair":{"a":1,"b":"x"}})", ""},
      {R"({"exit":0,"pair":{"b":"x"}})", "body.pair: missing required member 'a'"},
      {R"({"exit":0,"pair":{"a":"1"}})", "body.pair.a: expected integer, got string"},
      {R"({"exit":0,"either":["x"]})", ""},
      {R"({"exit":0,"either":{"x":1}})", ""},
      {R"({"exit":0,"either":"x"})", "body.either: matches 0 of the 2 alternatives of oneOf"},
      {R"({"exit":0,"either":{"x":"1"}})", "body.either: matches 0 of the 2 alternatives of oneOf"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    CHECK(check(obj, r.body) == r.error);
  }
  // oneOf wants exactly one: two alternatives that both match fail.
  const Schema both = Schema::one_of({Schema::string(), Schema::string().enums({"x"})});
  CHECK(check(both, R"("y")") == "");
  CHECK(check(both, R"("x")") == "body: matches 2 of the 2 alternatives of oneOf");
  // No type: anything.
  CHECK(check(Schema::object({optional("any", Schema())}), R"({"any":[null]})") == "");
}

TEST_CASE("write_openapi: keywords in a fixed order, documentation included", "[proto]") {
  struct Row {
    Schema schema;
    const char* want;
  };
  const Row rows[] = {
      {Schema::string(), R"({"type":"string"})"},
      {Schema::string().enums({"a", "b"}).describe("d"),
       R"({"type":"string","enum":["a","b"],"description":"d"})"},
      {Schema::boolean().constant(false), R"({"type":"boolean","const":false})"},
      {Schema::string().constant("n"), R"({"type":"string","const":"n"})"},
      {Schema::string().describe("d").pattern("^x$"),
       R"({"type":"string","pattern":"^x$","description":"d"})"},
      {Schema::string().example("12ms"), R"({"type":"string","examples":["12ms"]})"},
      {Schema::array(Schema::string()).describe("d").max_items(5).min_items(1),
       R"({"type":"array","minItems":1,"maxItems":5,"description":"d","items":{"type":"string"}})"},
      {Schema::boolean().describe("d").default_json("false"),
       R"({"type":"boolean","default":false,"description":"d"})"},
      {Schema::ref(kPair), R"({"$ref":"#/components/schemas/Pair"})"},
      {Schema::object({required("a", Schema::integer()), optional("b", Schema::string()),
                       required("c", Schema::ref(kPair))})
           .extra_members(),
       R"({"type":"object","required":["a","c"],"additionalProperties":true,"properties":)"
       R"({"a":{"type":"integer"},"b":{"type":"string"},)"
       R"("c":{"$ref":"#/components/schemas/Pair"}}})"},
      {Schema::object().describe("d").values(Schema::string()),
       R"({"type":"object","description":"d","additionalProperties":{"type":"string"}})"},
      {Schema::one_of({Schema::string(), Schema::integer()}),
       R"({"oneOf":[{"type":"string"},{"type":"integer"}]})"},
  };
  for (const auto& r : rows)
    CHECK(openapi(r.schema) == r.want);
}

TEST_CASE("members taken from another description keep its schema", "[proto]") {
  Member m = optional(kPair, "a");
  CHECK(m.name == "a");
  CHECK_FALSE(m.required);
  CHECK(openapi(m.schema) == R"({"type":"integer"})");
  Member r = required(kPair, "b").describe("said here");
  CHECK(r.required);
  CHECK(openapi(r.schema) == R"({"type":"string","description":"said here"})");
  CHECK(openapi(kPair.schema.member("a").schema) == R"({"type":"integer"})"); // unchanged
}

TEST_CASE("every agent reply struct writes a body its description accepts", "[proto]") {
  RunResult invalid_json;
  invalid_json.error = "invalid JSON";

  CapabilitiesReply caps;
  caps.host = "a1";
  caps.version = "0.12.3";
  caps.tags = {{"env", "prod"}};
  ScriptInfo s1{
      "noop",          "/opt/noop.sh", true, "default", std::string(R"({"type":"object"})"),
      std::string("1")};
  ScriptInfo s2{"bare", "/opt/bare.sh", false, "default", std::nullopt, std::nullopt};
  caps.scripts = {s1, s2};

  ResultRecord done{"r1",
                    "done",
                    "noop",
                    "owner",
                    "2026-01-01T00:00:00Z",
                    std::string("2026-01-01T00:00:01Z"),
                    int64_t{0},
                    std::string("o"),
                    std::string("e"),
                    std::string("x"),
                    true,
                    true};
  ResultRecord running = done;
  running.status = "running";
  running.finished = std::nullopt;
  running.exit = std::nullopt;
  running.out = running.err = running.error = std::nullopt;
  running.truncated = running.timed_out = false;

  struct Row {
    const char* what;
    std::string body;
    const Definition& def;
  };
  const Row rows[] = {
      {"run result", full_run_result().to_json(), agent_bodies().run_result},
      {"run refusal", refusal("script not permitted").to_json(), agent_bodies().run_result},
      {"run invalid JSON", invalid_json.to_json(), agent_bodies().run_result},
      {"async accepted", AsyncReply{"noop", "accepted", "r", std::nullopt}.to_json(),
       agent_bodies().async_reply},
      {"async busy", AsyncReply{"noop", "busy", "r", std::string(kAsyncBusy)}.to_json(),
       agent_bodies().async_reply},
      {"ping", PingReply{"ok", "a1", "0.12.3", "Feb 27 04:17:27 2029 GMT", true, "r"}.to_json(),
       agent_bodies().ping_reply},
      {"capabilities", caps.to_json(), agent_bodies().capabilities_reply},
      {"capabilities, none", CapabilitiesReply{}.to_json(), agent_bodies().capabilities_reply},
      {"result done", done.to_json(), agent_bodies().result_record},
      {"result running", running.to_json(), agent_bodies().result_record},
      {"result unknown", result_unknown_json("r1"), agent_bodies().result_record},
      {"rotate ok",
       RotateReply{"ok", std::string("add"), std::string("1a"), std::string("d"), std::nullopt}
           .to_json(),
       agent_bodies().rotate_reply},
      {"rotate error",
       RotateReply{"error", std::nullopt, std::nullopt, std::nullopt, std::string("bad")}.to_json(),
       agent_bodies().rotate_reply},
      {"renew ok", RenewReply{"ok", std::string("PEM"), std::string("r"), std::nullopt}.to_json(),
       agent_bodies().renew_reply},
      {"renew error", RenewReply{"error", std::nullopt, std::nullopt, std::string("x")}.to_json(),
       agent_bodies().renew_reply},
      {"renew-complete ok",
       RenewCompleteReply{"ok", std::string("r"), true, std::nullopt}.to_json(),
       agent_bodies().renew_complete_reply},
      {"renew-complete error",
       RenewCompleteReply{"error", std::nullopt, false, std::string("x")}.to_json(),
       agent_bodies().renew_complete_reply},
      {"error", ErrorReply{"not found", std::nullopt}.to_json(), agent_bodies().error_reply},
      {"serial mismatch", body::serial_mismatch(), agent_bodies().error_reply},
      {"not authorised", body::not_authorised("no"), agent_bodies().error_reply},
  };
  std::map<const Definition*, std::set<std::string>> written;
  for (const auto& r : rows) {
    INFO(r.what << ": " << r.body);
    json::Document d = doc(r.body);
    CHECK(validate(r.def.schema, d).message() == "");
    // Every member the struct writes is described (the description lists all of them).
    CHECK(unlisted(r.def.schema, d).empty());
    for (const auto& m : d.GetObject())
      written[&r.def].insert(m.name.GetString());
  }
  // And every member described is written by some row: the description invents nothing.
  for (const auto& [def, names] : written)
    for (const Member& m : def->schema.members()) {
      INFO(def->name << " " << m.name);
      CHECK(names.count(m.name) == 1);
    }
}

TEST_CASE("the description rejects what the structs must not write", "[proto]") {
  struct Row {
    const Definition& def;
    const char* body;
    const char* error;
  };
  const Row rows[] = {
      {agent_bodies().run_result, R"({"script":"x"})", "body: missing required member 'exit'"},
      {agent_bodies().run_result, R"({"exit":"0"})", "body.exit: expected integer, got string"},
      {agent_bodies().async_reply, R"({"script":"x","status":"done","reqid":"r"})",
       R"(body.status: "done" is not one of accepted, busy)"},
      {agent_bodies().ping_reply,
       R"({"status":"ok","host":"h","version":"v","expiry":"e",)"
       R"("staged":"no","reqid":"r"})",
       "body.staged: expected boolean, got string"},
      {agent_bodies().capabilities_reply,
       R"({"status":"ok","host":"h","version":"v","tags":{},"scripts":[{"path":"/x"}]})",
       "body.scripts[0]: missing required member 'name'"},
      {agent_bodies().result_record, R"({"status":"unknown"})",
       "body: missing required member 'reqid'"},
      {agent_bodies().error_reply, R"({"status":"forbidden"})",
       "body: missing required member 'error'"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    CHECK(check(r.def.schema, r.body) == r.error);
  }
}

TEST_CASE("agent replies are not API components; their script entry is", "[proto]") {
  const AgentBodies& agent = agent_bodies();
  for (const Definition* d :
       {&agent.run_result, &agent.async_reply, &agent.ping_reply, &agent.capabilities_reply,
        &agent.result_record, &agent.rotate_reply, &agent.renew_reply, &agent.renew_complete_reply,
        &agent.error_reply}) {
    INFO(d->name);
    CHECK(std::string(d->name).rfind("agent.", 0) == 0);
    CHECK(find_api_body(d->name) == nullptr);
  }
  CHECK(find_api_body("ScriptEntry") == &agent.script_entry);
  CHECK(find_api_body("PingResult") != nullptr);
  CHECK(find_api_body("nope") == nullptr);
}

TEST_CASE("the API's per-host results carry the agent's replies through", "[proto]") {
  struct Pair {
    const Definition& agent;
    const char* api;
  };
  const Pair pairs[] = {
      {agent_bodies().ping_reply, "PingResult"},
      {agent_bodies().run_result, "RunResult"},
      {agent_bodies().async_reply, "AsyncSubmitResult"},
      {agent_bodies().capabilities_reply, "HostCapabilities"},
  };
  for (const auto& p : pairs) {
    const Definition* api = find_api_body(p.api);
    REQUIRE(api);
    for (const Member& m : p.agent.schema.members()) {
      INFO(p.api << " lists the agent's " << m.name);
      bool listed = false;
      for (const Member& a : api->schema.members())
        listed = listed || a.name == m.name;
      CHECK(listed);
    }
  }

  // The agent's body plus what the dispatcher adds (§5.3): host, rtt, state.
  auto as_result = [](const std::string& agent_body) {
    json::Document d = doc(agent_body);
    auto& a = d.GetAllocator();
    d.RemoveMember("host");
    d.AddMember("host", "a1", a);
    d.AddMember("rtt", "12ms", a);
    d.AddMember("state", "ok", a);
    return d;
  };
  CapabilitiesReply caps;
  caps.scripts = {ScriptInfo{"noop", "/opt/noop.sh", true, "default", std::nullopt, std::nullopt}};
  struct Row {
    const char* what;
    std::string agent_body;
    const char* api;
  };
  const Row rows[] = {
      {"ping", PingReply{"ok", "a1", "0.12.3", "unknown", false, "r"}.to_json(), "PingResult"},
      {"run", full_run_result().to_json(), "RunResult"},
      {"run refusal", refusal("script not permitted").to_json(), "RunResult"},
      {"async accepted", AsyncReply{"noop", "accepted", "r", std::nullopt}.to_json(),
       "AsyncSubmitResult"},
      // An agent with an executor refuses async runs in the shape of a sync result: no status.
      {"async refused", refusal(kAsyncExecutorRefusal).to_json(), "AsyncSubmitResult"},
      {"capabilities", caps.to_json(), "HostCapabilities"},
  };
  for (const auto& r : rows) {
    INFO(r.what << ": " << r.agent_body);
    CHECK(validate(find_api_body(r.api)->schema, as_result(r.agent_body)).message() == "");
  }
}
