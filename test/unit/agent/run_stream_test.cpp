// Tests for src/agent/run_stream.cpp and the streamed /run of handle_run.cpp (tag [agent]):
// how output is cut into chunks, and what the agent answers when asked for live output.
#include <catch2/catch.hpp>

#include "agent/run_stream.hpp"
#include "handler_fixture.hpp"
#include "proto/agent_wire.hpp"

using namespace cx;
using namespace cx::agent;

TEST_CASE("take_chunks sends whole lines, cuts long ones and keeps a partial line", "[agent]") {
  struct Row {
    std::string pending;
    size_t max;
    bool all;
    std::vector<std::string> chunks;
    std::string left;
  };
  const std::string e_acute = "\xc3\xa9"; // two bytes
  const Row rows[] = {
      {"", 8, false, {}, ""},
      {"abc", 8, false, {}, "abc"},
      {"abc", 8, true, {"abc"}, ""},
      {"a\nb\n", 8, false, {"a\nb\n"}, ""},
      {"a\nb\nc", 8, false, {"a\nb\n"}, "c"},
      {"a\nb\nc", 8, true, {"a\nb\n", "c"}, ""},
      // Lines grouped up to max bytes a chunk.
      {"aaa\nbbb\nccc\n", 8, false, {"aaa\nbbb\n", "ccc\n"}, ""},
      // A run without a newline longer than max is cut, then the line ends.
      {"aaaaaaaaaaaa\n", 8, false, {"aaaaaaaa", "aaaa\n"}, ""},
      // A cut never splits a UTF-8 character: 7 ASCII bytes then a 2-byte one.
      {"aaaaaaa" + e_acute + "b", 8, false, {"aaaaaaa"}, e_acute + "b"},
      // Bytes that are not UTF-8 are cut anywhere.
      {std::string(10, '\x80'), 8, false, {std::string(8, '\x80')}, std::string(2, '\x80')},
  };
  for (const auto& r : rows) {
    INFO(r.pending << " max " << r.max << " all " << r.all);
    std::string pending = r.pending;
    CHECK(take_chunks(pending, r.max, r.all) == r.chunks);
    CHECK(pending == r.left);
  }
}

namespace {
std::vector<proto::RunChunk> chunks_of(const std::string& ndjson, std::string* last) {
  std::vector<proto::RunChunk> out;
  size_t from = 0;
  for (size_t nl; (nl = ndjson.find('\n', from)) != std::string::npos; from = nl + 1) {
    std::string line = ndjson.substr(from, nl - from);
    auto doc = json::parse(line);
    REQUIRE(doc.ok());
    if (auto c = proto::RunChunk::from_json(*doc))
      out.push_back(*c);
    else
      *last = line;
  }
  CHECK(from == ndjson.size()); // every line ends with LF
  return out;
}
} // namespace

TEST_CASE("run with stream answers NDJSON: the output as it comes, then the result", "[agent]") {
  test::AgentFixture f;
  f.allow("talk", "echo one; echo err >&2; printf 'two'; exit 4");
  f.load();
  auto call = f.call(R"({"script":"talk","args":[],"reqid":"r9","stream":true})");
  handle_run(*f.ctx, call);
  f.run();
  REQUIRE(f.client->answers.size() == 1);
  const auto& a = f.client->answer();
  CHECK(a.status == 200);
  CHECK(a.content_type == "application/x-ndjson");
  std::string last;
  auto chunks = chunks_of(a.body, &last);
  std::string out, err;
  for (const auto& c : chunks) {
    (c.is_stdout() ? out : err) += c.data;
    CHECK(c.ms >= 0);
  }
  CHECK(out == "one\ntwo");
  CHECK(err == "err\n");
  // The last line is exactly the answer the original's framing carries.
  CHECK(last == R"({"script":"talk","exit":4,"stdout":"one\ntwo","stderr":"err\n","reqid":"r9"})");
  CHECK(f.ctx->pending() == 0);
}

TEST_CASE("run with stream keeps to the output cap and says truncated", "[agent]") {
  test::AgentFixture f;
  f.allow("flood", "yes 0123456789abcdef0123456789abcde | head -c 200000");
  f.write_conf("script_output_limit = 1000\n");
  f.load();
  auto call = f.call(R"({"script":"flood","reqid":"r1","stream":1})");
  handle_run(*f.ctx, call);
  f.run();
  std::string last;
  auto chunks = chunks_of(f.client->answer().body, &last);
  std::string out;
  for (const auto& c : chunks)
    out += c.data;
  CHECK(out.size() == 1000);
  auto doc = json::parse(last);
  REQUIRE(doc.ok());
  CHECK(json::get_string(*doc, "stdout")->size() == 1000);
  CHECK(json::find(*doc, "truncated")->GetBool());
}

TEST_CASE("refusals stay one JSON object even when stream is asked for", "[agent]") {
  test::AgentFixture f;
  f.load();
  auto call = f.call(R"({"script":"nope","reqid":"r3","stream":true})");
  handle_run(*f.ctx, call);
  CHECK(f.client->answer().content_type == "application/json");
  CHECK(f.client->answer().body ==
        R"({"script":"nope","exit":-1,"reqid":"r3","error":"script not permitted"})");
}

TEST_CASE("stream false or absent answers as the original does", "[agent]") {
  for (const char* body :
       {R"({"script":"hi","reqid":"r"})", R"({"script":"hi","reqid":"r","stream":false})",
        R"({"script":"hi","reqid":"r","stream":0})"}) {
    INFO(body);
    test::AgentFixture f;
    f.allow("hi", "echo hi");
    f.load();
    auto call = f.call(body);
    handle_run(*f.ctx, call);
    f.run();
    CHECK(f.client->answer().content_type == "application/json");
    CHECK(f.client->answer().body ==
          R"({"script":"hi","exit":0,"stdout":"hi\n","stderr":"","reqid":"r"})");
  }
}

TEST_CASE("through the executor a stream request is answered whole, as the original does",
          "[agent]") {
  // The executor's frame carries the output only at the end (agent-and-wire §4.8).
  test::AgentFixture f;
  f.allow("hi", "echo hi");
  f.write_conf("executor_socket = " + f.dir / "no-such.sock" + "\n");
  f.load();
  auto call = f.call(R"({"script":"hi","reqid":"r","stream":true})");
  handle_run(*f.ctx, call);
  f.run();
  CHECK(f.client->answer().content_type == "application/json");
  auto doc = f.client->answer_json();
  CHECK(json::find(doc, "exit")->GetInt64() == -1);
}
