// Tests for src/engine/live.cpp (tag [engine]): reading a streamed /run answer as it grows, and
// the events of a followed run.
#include <catch2/catch.hpp>

#include "engine/live.hpp"
#include "json/json.hpp"

using namespace cx;
using namespace cx::engine;

TEST_CASE("is_ndjson reads the media type only", "[engine]") {
  std::string a = "application/x-ndjson", b = "Application/X-NDJSON; charset=utf-8",
              c = "application/json", d = "application/x-ndjsonx";
  CHECK(is_ndjson(&a));
  CHECK(is_ndjson(&b));
  CHECK_FALSE(is_ndjson(&c));
  CHECK_FALSE(is_ndjson(&d));
  CHECK_FALSE(is_ndjson(nullptr));
}

TEST_CASE("NdjsonReader hands each chunk over once, as lines complete", "[engine]") {
  const std::string body = R"({"stream":"stdout","data":"one\n","ms":3})"
                           "\n"
                           R"({"stream":"stderr","data":"e","ms":4})"
                           "\n"
                           R"({"script":"s","exit":0,"stdout":"one\n","stderr":"e","reqid":"r"})";
  std::vector<std::string> got;
  auto on = [&](const proto::RunChunk& c) { got.push_back(c.stream + ":" + c.data); };
  NdjsonReader r;
  // Fed as the body grows, byte by byte: nothing twice, nothing before its newline.
  for (size_t n = 0; n <= body.size(); ++n)
    r.feed(std::string_view(body).substr(0, n), false, on);
  CHECK(got == std::vector<std::string>{"stdout:one\n", "stderr:e"});
  CHECK_FALSE(r.result()); // the last line has no newline yet
  r.feed(body, true, on);
  CHECK(got.size() == 2);
  CHECK(r.chunks() == 2);
  REQUIRE(r.result());
  CHECK(*r.result() == R"({"script":"s","exit":0,"stdout":"one\n","stderr":"e","reqid":"r"})");
}

TEST_CASE("NdjsonReader: a stream cut short has no result; junk is taken as the result",
          "[engine]") {
  NdjsonReader cut;
  cut.feed(R"({"stream":"stdout","data":"x","ms":1})"
           "\n",
           true, nullptr);
  CHECK(cut.chunks() == 1);
  CHECK_FALSE(cut.result());
  NdjsonReader junk;
  junk.feed("not json\n", true, nullptr);
  REQUIRE(junk.result());
  CHECK(*junk.result() == "not json"); // judged by the result reader: "invalid JSON response"
  // A chunk with another stream name is not a chunk.
  NdjsonReader other;
  other.feed(R"({"stream":"stdin","data":"x"})", true, nullptr);
  CHECK(other.chunks() == 0);
  CHECK(other.result());
}

TEST_CASE("follow events carry host, stream, data and both clocks", "[engine]") {
  proto::RunChunk c{"stdout", "hi\n", 12};
  CHECK(output_event_json("web1", c, true, 40) ==
        R"({"event":"output","host":"web1","stream":"stdout","data":"hi\n","ms":12,"t":40})");
  CHECK(output_event_json("web1", c, false, 40) ==
        R"({"event":"output","host":"web1","stream":"stdout","data":"hi\n","t":40})");
  HostResult r;
  r.name = "web1";
  r.doc.AddMember("exit", 0, r.doc.GetAllocator());
  r.doc.AddMember("stdout", "out", r.doc.GetAllocator());
  r.doc.AddMember("stderr", "", r.doc.GetAllocator());
  CHECK(
      result_event_json(r, 41) ==
      R"({"event":"result","host":"web1","t":41,"result":{"exit":0,"stdout":"out","stderr":""}})");
  auto out = output_of(r);
  REQUIRE(out.size() == 1); // an empty stderr is no output
  CHECK(out[0].stream == "stdout");
  CHECK(out[0].data == "out");
  BatchReport b;
  b.number = 2;
  b.hosts = {"web1"};
  b.reqid = "r2";
  b.state = "done";
  CHECK(
      batch_event_json(b, 50) ==
      R"({"event":"batch","t":50,"batch":{"batch":2,"reqid":"r2","hosts":["web1"],"state":"done","failed":0}})");
}
