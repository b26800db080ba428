// Tests for src/http/writer.cpp: the exact response and request bytes.
#include <catch2/catch.hpp>

#include "http/parser.hpp"
#include "http/writer.hpp"

using namespace cx::http;

TEST_CASE("response bytes are exact", "[http]") {
  struct Row {
    int code;
    std::string body;
    std::vector<HeaderField> extra;
    std::string expected;
  };
  const std::string ct = "Content-Type: application/json\r\n";
  const Row rows[] = {
      {413,
       "BODY",
       {},
       "HTTP/1.0 413 Content Too Large\r\nContent-Type: application/json\r\n"
       "Content-Length: 4\r\n\r\nBODY"},
      {200, "{}", {}, "HTTP/1.0 200 OK\r\n" + ct + "Content-Length: 2\r\n\r\n{}"},
      {202, "", {}, "HTTP/1.0 202 Accepted\r\n" + ct + "Content-Length: 0\r\n\r\n"},
      {400, "x", {}, "HTTP/1.0 400 Bad Request\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {403, "x", {}, "HTTP/1.0 403 Forbidden\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {404,
       "{\"error\":\"not found\"}",
       {},
       "HTTP/1.0 404 Not Found\r\n" + ct + "Content-Length: 21\r\n\r\n{\"error\":\"not found\"}"},
      {409, "x", {}, "HTTP/1.0 409 Conflict\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {431,
       "x",
       {},
       "HTTP/1.0 431 Request Header Fields Too Large\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {500, "x", {}, "HTTP/1.0 500 Internal Server Error\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {503, "x", {}, "HTTP/1.0 503 Service Unavailable\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {418, "x", {}, "HTTP/1.0 418 Unknown\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      {201, "x", {}, "HTTP/1.0 201 Unknown\r\n" + ct + "Content-Length: 1\r\n\r\nx"},
      // The length is in bytes, not characters.
      {200, "caf\xc3\xa9", {}, "HTTP/1.0 200 OK\r\n" + ct + "Content-Length: 5\r\n\r\ncaf\xc3\xa9"},
      {200,
       "{}",
       {{"Connection", "keep-alive"}},
       "HTTP/1.0 200 OK\r\n" + ct + "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"},
      {200,
       "{}",
       {{"Connection", "keep-alive"}, {"Keep-Alive", "timeout=5"}},
       "HTTP/1.0 200 OK\r\n" + ct +
           "Content-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n{}"},
  };
  for (const Row& r : rows) {
    INFO(r.code);
    CHECK(format_response(r.code, r.body, r.extra) == r.expected);
  }
}

TEST_CASE("transcript 13 response, byte for byte", "[http]") {
  CHECK(format_response(413, R"({"error":"request too large"})") ==
        "HTTP/1.0 413 Content Too Large\r\nContent-Type: application/json\r\n"
        "Content-Length: 29\r\n\r\n{\"error\":\"request too large\"}");
}

TEST_CASE("request bytes are exact", "[http]") {
  struct Row {
    std::string got, expected;
  };
  const Row rows[] = {
      {format_request("POST", "/ping", "vm:7443", "{}"),
       "POST /ping HTTP/1.1\r\nHost: vm:7443\r\nConnection: close\r\n"
       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
      {format_request("POST", "/rotate-serial", "10.0.0.5:7443", ""),
       "POST /rotate-serial HTTP/1.1\r\nHost: 10.0.0.5:7443\r\nConnection: close\r\n"
       "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n"},
      {format_request("GET", "/capabilities", "vm:7443", ""),
       "GET /capabilities HTTP/1.1\r\nHost: vm:7443\r\nConnection: close\r\n\r\n"},
      {format_request("POST", "/x", "h", "a=b", "text/plain"),
       "POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Type: text/plain\r\n"
       "Content-Length: 3\r\n\r\na=b"},
      // agent-and-wire §5.2: the pairing request.
      {format_http10_request("POST", "/pair", "{\"hostname\":\"h\"}"),
       "POST /pair HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
       "{\"hostname\":\"h\"}"},
      // agent-and-wire §1.3: self-ping.
      {format_http10_request("POST", "/ping", "{\"reqid\":\"0badc0de\"}"),
       "POST /ping HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
       "{\"reqid\":\"0badc0de\"}"},
  };
  for (const Row& r : rows)
    CHECK(r.got == r.expected);
}

TEST_CASE("what we write, we parse back", "[http]") {
  RequestParser rp;
  std::string req = format_request("POST", "/run", "vm:7443", R"({"script":"noop"})");
  Progress p = rp.feed(req);
  REQUIRE(p.status == ParseStatus::complete);
  CHECK(p.consumed == req.size());
  CHECK(rp.request().body == R"({"script":"noop"})");
  CHECK(*rp.request().header("host") == "vm:7443");
  CHECK_FALSE(rp.wants_keep_alive());

  ResponseParser sp;
  std::string resp = format_response(503, "{}", {{"Connection", "keep-alive"}});
  p = sp.feed(resp);
  REQUIRE(p.status == ParseStatus::complete);
  CHECK(sp.response().status == 503);
  CHECK(sp.response().reason == "Service Unavailable");
  CHECK(*sp.response().header("connection") == "keep-alive");
}

TEST_CASE("format_stream_head: no length, the connection closes after the body", "[http]") {
  CHECK(format_stream_head(200, "application/x-ndjson") ==
        "HTTP/1.0 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n"
        "Cache-Control: no-cache\r\n\r\n");
  CHECK(format_stream_head(200, "text/event-stream", {{"X-Request-Id", "r1"}}) ==
        "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
        "Cache-Control: no-cache\r\nX-Request-Id: r1\r\n\r\n");
}
