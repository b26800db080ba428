// Tests for src/proto/executor_frame.cpp (tag [proto]): the executor's frames byte for byte,
// their refusals, and how the agent reads the executor's limits back out of an answer.
#include <catch2/catch.hpp>

#include "proto/executor_frame.hpp"

using namespace cx::proto;

TEST_CASE("executor frames round trip and reject malformed input", "[proto]") {
  ExecRequest req{"r1", "disp-1", "noop", "{\"x\":1}", {"a", "", "b c"}};
  auto frame = encode_request(req);
  REQUIRE(frame.ok());
  auto d = decode_request(*frame);
  REQUIRE(d.status == FrameStatus::complete);
  CHECK(d.consumed == frame->size());
  CHECK(d.request.reqid == "r1");
  CHECK(d.request.dispatcher_id == "disp-1");
  CHECK(d.request.script == "noop");
  CHECK(d.request.stdin_bytes == "{\"x\":1}");
  CHECK(d.request.args == req.args);
  // Every strict prefix needs more bytes.
  for (size_t n = 0; n < frame->size(); ++n)
    CHECK(decode_request(std::string_view(*frame).substr(0, n)).status == FrameStatus::need_more);

  auto be = [](uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i)
      s[static_cast<size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
    return s;
  };
  struct Bad {
    std::string bytes;
    const char* error;
  };
  const Bad bad[] = {
      {be(0), "frame too large"},
      {be(kMaxFrameBytes + 1), "frame too large"},
      {be(4) + be(100), "malformed request"}, // field overruns the frame
      {be(20) + be(0) + be(0) + be(0) + be(0) + be(300), "malformed request"},     // argc > 256
      {be(21) + be(0) + be(0) + be(0) + be(0) + be(0) + "x", "malformed request"}, // trailing
  };
  for (const auto& b : bad) {
    auto r = decode_request(b.bytes);
    CHECK(r.status == FrameStatus::error);
    CHECK(r.error == b.error);
  }
  ExecRequest many;
  many.args.assign(257, "x");
  CHECK_FALSE(encode_request(many).ok());

  ExecResponse resp{-1, "out", "executor: script not permitted"};
  std::string rb = encode_response(resp);
  auto rd = decode_response(rb);
  REQUIRE(rd.status == FrameStatus::complete);
  CHECK(rd.response.exit == -1);
  CHECK(rd.response.out == "out");
  CHECK(rd.response.err == "executor: script not permitted");
  CHECK(decode_response(rb.substr(0, rb.size() - 1)).status == FrameStatus::need_more);
  CHECK(decode_response(be(0) + be(kMaxResponseField + 1)).status == FrameStatus::error);
}

TEST_CASE("the executor's limits are read back out of its answer", "[proto]") {
  struct Row {
    int32_t exit;
    std::string out, err;
    bool truncated;
    std::optional<int64_t> timed_out;
    std::string out_after, err_after;
  };
  const std::string cut(kExecTruncatedMarker);
  const Row rows[] = {
      {0, "a", "b", false, std::nullopt, "a", "b"},
      {0, "a" + cut, "b", true, std::nullopt, "a", "b"},
      {0, "a", "b" + cut, true, std::nullopt, "a", "b"},
      {126, "x", "partial\n" + exec_timeout_line(5), false, 5, "x", "partial\n"},
      {126, "", exec_timeout_line(30), false, 30, "", ""},
      {126, "", "e" + cut + exec_timeout_line(2), true, 2, "", "e"},
      // Only with exit 126, only as the last line, only with digits.
      {1, "", exec_timeout_line(5), false, std::nullopt, "", exec_timeout_line(5)},
      {126, "", exec_timeout_line(5) + "more\n", false, std::nullopt, "",
       exec_timeout_line(5) + "more\n"},
      {126, "", "executor: script timed out after 5xs\n", false, std::nullopt, "",
       "executor: script timed out after 5xs\n"},
      {126, "", "executor: script timed out after s\n", false, std::nullopt, "",
       "executor: script timed out after s\n"},
  };
  for (const auto& r : rows) {
    INFO(r.err);
    ExecResponse resp{r.exit, r.out, r.err};
    ExecLimits l = take_exec_limits(resp);
    CHECK(l.truncated == r.truncated);
    CHECK(l.timed_out == r.timed_out);
    CHECK(resp.out == r.out_after);
    CHECK(resp.err == r.err_after);
  }
  CHECK(exec_timeout_line(7) == "executor: script timed out after 7s\n");
}
