// Tests for src/http/parser.cpp and framer.cpp: request and response parsing, limits, chunking.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "http/parser.hpp"

using namespace cx::http;

namespace {

struct Outcome {
  ParseStatus status = ParseStatus::need_more;
  int error_status = 0;
  std::string message;
  size_t consumed = 0;
  Request request;
};

// Feed `input` in pieces of `chunk` bytes (0 = whole) until complete or error; then, if
// still waiting and `eof` is set, signal EOF.
Outcome parse_request(const std::string& input, size_t chunk = 0, bool eof = false,
                      RequestLimits limits = {}) {
  RequestParser p(limits);
  Outcome o;
  size_t off = 0;
  while (off < input.size() && o.status == ParseStatus::need_more) {
    size_t len = chunk == 0 ? input.size() : std::min(chunk, input.size() - off);
    Progress pr = p.feed(std::string_view(input).substr(off, len));
    REQUIRE(pr.consumed <= len);
    if (pr.status == ParseStatus::need_more) REQUIRE(pr.consumed == len);
    o.status = pr.status;
    o.consumed += pr.consumed;
    off += len;
  }
  if (o.status == ParseStatus::need_more && eof) o.status = p.finish();
  REQUIRE(p.status() == o.status);
  o.error_status = p.error_status();
  o.message = std::string(p.error_message());
  o.request = p.request();
  return o;
}

std::string with_headers(size_t n) {
  std::string s = "GET /capabilities HTTP/1.1\r\n";
  for (size_t i = 0; i < n; ++i)
    s += "X-H" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

std::string post_with_length(const std::string& length) {
  return "POST /run HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: " + length +
         "\r\n\r\n";
}

// The request LWP sends for the Perl dispatcher (agent-and-wire §3.1).
const std::string kPerlPing = "POST /ping HTTP/1.1\r\n"
                              "TE: deflate,gzip;q=0.3\r\n"
                              "Connection: TE, close\r\n"
                              "Host: vm:7443\r\n"
                              "User-Agent: libwww-perl/6.68\r\n"
                              "Content-Length: 28\r\n"
                              "Content-Type: application/json\r\n"
                              "\r\n"
                              "{\"reqid\":\"00000000deadbeef\"}";

// What the agent's request-pairing writes by hand (agent-and-wire §5.2, transcript 17).
const std::string kPairBody =
    "{\"hostname\":\"wire-test\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nMIIC\\n"
    "-----END CERTIFICATE REQUEST-----\\n\",\"nonce\":\"00112233445566778899aabbccddeeff\","
    "\"lookup_by\":\"ip\",\"port\":7443,\"ip\":\"127.0.0.1\"}";
const std::string kPair = "POST /pair HTTP/1.0\r\nContent-Type: application/json\r\n"
                          "Content-Length: " +
                          std::to_string(kPairBody.size()) + "\r\n\r\n" + kPairBody;

} // namespace

TEST_CASE("requests that parse", "[http]") {
  struct Row {
    const char* name;
    std::string input;
    std::string method, path, version, body;
    std::vector<std::pair<std::string, std::string>> headers; // a subset to check
    bool keep_alive;
  };
  const std::string run_body = R"({"script":"noop","args":[],"reqid":"abc"})";
  const Row rows[] = {
      {"Perl dispatcher ping",
       kPerlPing,
       "POST",
       "/ping",
       "HTTP/1.1",
       "{\"reqid\":\"00000000deadbeef\"}",
       {{"te", "deflate,gzip;q=0.3"},
        {"connection", "TE, close"},
        {"host", "vm:7443"},
        {"user-agent", "libwww-perl/6.68"},
        {"content-length", "28"},
        {"content-type", "application/json"}},
       false},
      {"minimal HTTP/1.0 run",
       "POST /run HTTP/1.0\r\nContent-Length: " + std::to_string(run_body.size()) + "\r\n\r\n" +
           run_body,
       "POST",
       "/run",
       "HTTP/1.0",
       run_body,
       {},
       false},
      {"pairing request",
       kPair,
       "POST",
       "/pair",
       "HTTP/1.0",
       kPairBody,
       {{"content-type", "application/json"}},
       false},
      {"curl GET",
       "GET /health HTTP/1.1\r\nHost: 127.0.0.1:7445\r\nUser-Agent: curl/7.88.1\r\n"
       "Accept: */*\r\n\r\n",
       "GET",
       "/health",
       "HTTP/1.1",
       "",
       {{"accept", "*/*"}},
       false},
      {"LF-only line ends",
       "POST /ping HTTP/1.0\nContent-Length: 2\n\n{}",
       "POST",
       "/ping",
       "HTTP/1.0",
       "{}",
       {},
       false},
      {"no version", "GET /capabilities\r\n\r\n", "GET", "/capabilities", "", "", {}, false},
      {"tabs and runs of spaces",
       "GET \t /result/abc   HTTP/1.1 \r\n\r\n",
       "GET",
       "/result/abc",
       "HTTP/1.1",
       "",
       {},
       false},
      {"method kept as sent",
       "get /health HTTP/1.1\r\n\r\n",
       "get",
       "/health",
       "HTTP/1.1",
       "",
       {},
       false},
      {"query string kept",
       "GET /health?x=1 HTTP/1.1\r\n\r\n",
       "GET",
       "/health?x=1",
       "HTTP/1.1",
       "",
       {},
       false},
      {"blank lines before the request line",
       "\r\n\nGET / HTTP/1.1\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {},
       false},
      {"last duplicate wins",
       "GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {{"x-a", "2"}},
       false},
      {"values trimmed, names lower-cased",
       "GET / HTTP/1.1\r\nAuthorization:  Bearer t0k  \r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {{"authorization", "Bearer t0k"}},
       false},
      {"non-header lines ignored",
       "GET / HTTP/1.1\r\nnot a header\r\n folded: x\r\n: v\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {},
       false},
      {"identical duplicate Content-Length",
       "POST /ping HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
       "POST",
       "/ping",
       "HTTP/1.1",
       "{}",
       {},
       false},
      {"Content-Length zero",
       "POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
       "POST",
       "/ping",
       "HTTP/1.1",
       "",
       {},
       false},
      {"leading zeros",
       "POST /ping HTTP/1.1\r\nContent-Length: 002\r\n\r\n{}",
       "POST",
       "/ping",
       "HTTP/1.1",
       "{}",
       {},
       false},
      {"bare CR in a value becomes a space",
       "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {{"x-a", "a b"}},
       false},
      {"bare CR in the request line separates",
       "GET /a\rHTTP/1.1\r\n\r\n",
       "GET",
       "/a",
       "HTTP/1.1",
       "",
       {},
       false},
      {"CR inside the body kept",
       "POST /p HTTP/1.0\r\nContent-Length: 3\r\n\r\na\r\n",
       "POST",
       "/p",
       "HTTP/1.0",
       "a\r\n",
       {},
       false},
      {"keep-alive",
       "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {},
       true},
      {"keep-alive any case, in a list",
       "GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.0",
       "",
       {},
       true},
      {"close",
       "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {},
       false},
      {"not a token match",
       "GET / HTTP/1.1\r\nConnection: keep-alive-ish\r\n\r\n",
       "GET",
       "/",
       "HTTP/1.1",
       "",
       {},
       false},
  };
  for (const Row& r : rows) {
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}}) {
      INFO(r.name << " chunk=" << chunk);
      Outcome o = parse_request(r.input, chunk);
      REQUIRE(o.status == ParseStatus::complete);
      CHECK(o.consumed == r.input.size());
      CHECK(o.error_status == 0);
      CHECK(o.request.method == r.method);
      CHECK(o.request.path == r.path);
      CHECK(o.request.version == r.version);
      CHECK(o.request.body == r.body);
      for (const auto& [name, value] : r.headers) {
        const std::string* got = o.request.header(name);
        REQUIRE(got != nullptr);
        CHECK(*got == value);
      }
      CHECK(o.request.wants_keep_alive() == r.keep_alive);
    }
  }
}

TEST_CASE("requests that fail", "[http]") {
  struct Row {
    const char* name;
    std::string input;
    bool eof; // signal EOF after the input
    int status;
    std::string message;
  };
  const std::string long_path(8192, 'a'); // no LF yet: refused as soon as it passes 8192
  const Row rows[] = {
      // EOF before anything usable: the original's "empty request".
      {"nothing at all", "", true, 400, "empty request"},
      {"only blank lines", "\r\n\r\n", true, 400, "empty request"},
      {"a lone CR", "\r", true, 400, "empty request"},
      {"EOF inside the request line", "POST /pi", true, 400, "truncated request"},
      {"EOF inside the headers", "POST /ping HTTP/1.1\r\nHost: x\r\n", true, 400,
       "truncated request"},
      {"EOF inside the body", post_with_length("10") + "{}", true, 400, "truncated request"},
      // Malformed request lines.
      {"single token", "GET\r\n\r\n", false, 400, "malformed request line"},
      {"four tokens", "GET /a b HTTP/1.1\r\n\r\n", false, 400, "malformed request line"},
      {"whitespace only", "   \r\n\r\n", false, 400, "malformed request line"},
      {"binary junk", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", 12), false, 400,
       "malformed request line"},
      {"NUL in the method", std::string("G\0T / HTTP/1.1\r\n\r\n", 18), false, 400,
       "malformed request line"},
      {"8-bit path", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", false, 400, "malformed request line"},
      {"DEL in the path", "GET /a\x7f HTTP/1.1\r\n\r\n", false, 400, "malformed request line"},
      {"separator in the method", "G(T / HTTP/1.1\r\n\r\n", false, 400, "malformed request line"},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", false, 400, "malformed request line"},
      {"version junk", "GET / FOO\r\n\r\n", false, 400, "malformed request line"},
      {"TLS record to a plain port",
       std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n", 13), false, 400,
       "malformed request line"},
      // Request line and header-section limits.
      {"request line too long", "GET /" + long_path, false, 400, "request line too long"},
      {"header section too large",
       "GET / HTTP/1.1\r\nX-Big: " + std::string(65536, 'b') + "\r\n\r\n", false, 431,
       "header section too large"},
      // Content-Length must be all digits; overflow is simply too large.
      {"letters", post_with_length("abc"), false, 400, "invalid content-length"},
      {"negative", post_with_length("-1"), false, 400, "invalid content-length"},
      {"plus sign", post_with_length("+5"), false, 400, "invalid content-length"},
      {"empty", post_with_length(""), false, 400, "invalid content-length"},
      {"two numbers", post_with_length("1 2"), false, 400, "invalid content-length"},
      {"hex", post_with_length("0x10"), false, 400, "invalid content-length"},
      {"conflicting duplicates",
       "POST /run HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false, 400,
       "invalid content-length"},
      {"beyond 64 bits", post_with_length("99999999999999999999999"), false, 413,
       "request too large"},
      // No chunked coding, ever.
      {"chunked", "POST /run HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       false, 400, "transfer-encoding not supported"},
      {"chunked beside a length",
       "POST /run HTTP/1.1\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n\r\nhello", false,
       400, "transfer-encoding not supported"},
      {"identity", "POST /run HTTP/1.1\r\nTRANSFER-ENCODING: identity\r\n\r\n", false, 400,
       "transfer-encoding not supported"},
  };
  for (const Row& r : rows) {
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}}) {
      INFO(r.name << " chunk=" << chunk);
      Outcome o = parse_request(r.input, chunk, r.eof);
      CHECK(o.status == ParseStatus::error);
      CHECK(o.error_status == r.status);
      CHECK(o.message == r.message);
    }
  }
}

TEST_CASE("header line limit: 32 ok, the 33rd is 431", "[http]") {
  struct Row {
    size_t lines;
    size_t limit;
    ParseStatus status;
    int error_status;
  };
  const Row rows[] = {
      {0, 32, ParseStatus::complete, 0}, {32, 32, ParseStatus::complete, 0},
      {33, 32, ParseStatus::error, 431}, {100, 32, ParseStatus::error, 431},
      {4, 4, ParseStatus::complete, 0},  {5, 4, ParseStatus::error, 431},
  };
  for (const Row& r : rows) {
    INFO(r.lines << " lines, limit " << r.limit);
    RequestLimits limits;
    limits.max_header_lines = r.limit;
    Outcome o = parse_request(with_headers(r.lines), 0, false, limits);
    CHECK(o.status == r.status);
    CHECK(o.error_status == r.error_status);
    if (r.status == ParseStatus::error) CHECK(o.message == "too many headers");
  }
  // Lines that are not headers count too, as in the original.
  std::string junk = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 33; ++i)
    junk += "junk\r\n";
  CHECK(parse_request(junk + "\r\n").error_status == 431);
}

TEST_CASE("body limit: decided from Content-Length before any body byte", "[http]") {
  struct Row {
    size_t limit;
    uint64_t length;
    ParseStatus status; // after feeding only the headers
  };
  const Row rows[] = {
      {1048576, 1048576, ParseStatus::need_more}, {1048576, 1048577, ParseStatus::error},
      {1048576, 2000000, ParseStatus::error},     {1048576, 200000000, ParseStatus::error},
      {65536, 65536, ParseStatus::need_more}, // the pairing listener's limit
      {65536, 65537, ParseStatus::error},
  };
  for (const Row& r : rows) {
    INFO("limit " << r.limit << " length " << r.length);
    RequestLimits limits;
    limits.max_body = r.limit;
    RequestParser p(limits);
    std::string head = post_with_length(std::to_string(r.length));
    Progress pr = p.feed(head);
    CHECK(pr.status == r.status);
    if (r.status == ParseStatus::error) {
      CHECK(p.error_status() == 413);
      CHECK(p.error_message() == "request too large");
      CHECK(pr.consumed <= head.size());
      CHECK(p.feed("x").consumed == 0); // nothing more is read
    } else {
      std::string body(r.length, 'x');
      pr = p.feed(body);
      CHECK(pr.status == ParseStatus::complete);
      CHECK(pr.consumed == body.size());
      CHECK(p.request().body.size() == r.length);
    }
  }
}

TEST_CASE("line limits are exact", "[http]") {
  std::string line = "GET /";
  line += std::string(8192 - line.size() - 9, 'a') + " HTTP/1.1";
  REQUIRE(line.size() == 8192);
  CHECK(parse_request(line + "\r\n\r\n").status == ParseStatus::error); // the CR is the 8193rd
  CHECK(parse_request(line + "\n\n").status == ParseStatus::complete);

  std::string head = "GET / HTTP/1.1\r\n";
  std::string field = "X-Big: ";
  std::string fits = head + field + std::string(65536 - field.size() - 4, 'b') + "\r\n\r\n";
  CHECK(parse_request(fits).status == ParseStatus::complete);
  std::string over = head + field + std::string(65536 - field.size() - 3, 'b') + "\r\n\r\n";
  CHECK(parse_request(over).error_status == 431);
}

TEST_CASE("fed one byte at a time equals fed whole", "[http]") {
  const std::string inputs[] = {
      kPerlPing,
      kPair,
      "GET /capabilities HTTP/1.0\r\n\r\n",
      with_headers(32),
      with_headers(33),
      post_with_length("1048577"),
      "POST /run HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET\r\n\r\n",
  };
  for (const std::string& in : inputs) {
    INFO(in.substr(0, 40));
    Outcome whole = parse_request(in, 0, true);
    Outcome bytes = parse_request(in, 1, true);
    CHECK(whole.status == bytes.status);
    CHECK(whole.consumed == bytes.consumed);
    CHECK(whole.error_status == bytes.error_status);
    CHECK(whole.request.method == bytes.request.method);
    CHECK(whole.request.path == bytes.request.path);
    CHECK(whole.request.headers == bytes.request.headers);
    CHECK(whole.request.body == bytes.request.body);
  }
}

TEST_CASE("pipelined keep-alive requests in one chunk", "[http]") {
  const std::string first = "POST /ping HTTP/1.1\r\nConnection: keep-alive\r\n"
                            "Content-Length: 2\r\n\r\n{}";
  const std::string second = "GET /capabilities HTTP/1.1\r\nConnection: keep-alive\r\n\r\n";
  // A stray CRLF after a body is tolerated before the next request line.
  for (const std::string& gap : {std::string(), std::string("\r\n")}) {
    const std::string stream = first + gap + second + "GET /res";
    RequestParser p;
    Progress pr = p.feed(stream);
    REQUIRE(pr.status == ParseStatus::complete);
    CHECK(pr.consumed == first.size());
    CHECK(p.request().path == "/ping");
    CHECK(p.request().body == "{}");
    CHECK(p.wants_keep_alive());
    // Complete is sticky until reset.
    CHECK(p.feed(std::string_view(stream).substr(pr.consumed)).consumed == 0);

    p.reset();
    std::string_view rest = std::string_view(stream).substr(pr.consumed);
    pr = p.feed(rest);
    REQUIRE(pr.status == ParseStatus::complete);
    CHECK(pr.consumed == gap.size() + second.size());
    CHECK(p.request().method == "GET");
    CHECK(p.request().path == "/capabilities");
    CHECK(p.request().body.empty());

    p.reset();
    rest.remove_prefix(pr.consumed);
    pr = p.feed(rest);
    CHECK(pr.status == ParseStatus::need_more);
    CHECK(pr.consumed == rest.size());
    CHECK(p.finish() == ParseStatus::error);
    CHECK(p.error_message() == "truncated request");
  }
}

TEST_CASE("a closed idle keep-alive connection reads as empty", "[http]") {
  RequestParser p;
  CHECK(p.finish() == ParseStatus::error);
  CHECK(p.error() == ParseError::empty);
  CHECK(p.error_status() == 400);
  p.reset();
  CHECK(p.error() == ParseError::none);
  CHECK(p.error_status() == 0);
  CHECK(p.feed("GET / HTTP/1.0\r\n\r\n").status == ParseStatus::complete);
}

TEST_CASE("has_token", "[http]") {
  struct Row {
    const char* list;
    const char* token;
    bool found;
  };
  const Row rows[] = {
      {"keep-alive", "keep-alive", true},
      {"TE, close", "close", true},
      {"TE, close", "keep-alive", false},
      {" Keep-Alive ,x", "keep-alive", true},
      {"", "keep-alive", false},
      {",,", "keep-alive", false},
      {"keep-alivex", "keep-alive", false},
  };
  for (const Row& r : rows) {
    INFO(r.list);
    CHECK(has_token(r.list, r.token) == r.found);
  }
}

namespace {

// Transcript 17: the pairing listener's two responses on one connection.
const std::string kPendingBody = R"({"reqid":"64dbe4662559d086","status":"pending"})";

std::string approved_body() {
  std::string pem = "-----BEGIN CERTIFICATE-----\\n";
  for (int i = 0; i < 20; ++i)
    pem += std::string(64, 'A') + "\\n";
  pem += "-----END CERTIFICATE-----\\n";
  return R"({"dispatcher_id":"vm","nonce":"00112233445566778899aabbccddeeff",)"
         R"("status":"approved","cert":")" +
         pem + R"(","dispatcher_serial":"2","ca":")" + pem + R"("})";
}

std::string framed(const std::string& body) {
  return "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Parse every response in `pieces` (fed in order) then signal EOF.
std::vector<Response> parse_responses(const std::vector<std::string_view>& pieces,
                                      ParseStatus* end = nullptr, ResponseLimits limits = {}) {
  ResponseParser p(limits);
  std::vector<Response> out;
  for (std::string_view piece : pieces) {
    while (true) {
      Progress pr = p.feed(piece);
      REQUIRE(pr.consumed <= piece.size());
      if (pr.status != ParseStatus::complete) break;
      out.push_back(p.response());
      p.reset();
      piece.remove_prefix(pr.consumed);
    }
    if (p.status() == ParseStatus::error) break;
  }
  ParseStatus last = p.finish();
  if (last == ParseStatus::complete) out.push_back(p.response());
  if (end != nullptr) *end = last;
  return out;
}

} // namespace

TEST_CASE("the two pairing responses, in one chunk and split at every offset", "[http]") {
  const std::string approved = approved_body();
  const std::string stream = framed(kPendingBody) + framed(approved);
  REQUIRE(framed(kPendingBody).find("Content-Length: 47\r\n") != std::string::npos);
  for (size_t split = 0; split <= stream.size(); ++split) {
    INFO("split at " << split);
    std::string_view s = stream;
    ParseStatus end;
    std::vector<Response> got = parse_responses({s.substr(0, split), s.substr(split)}, &end);
    REQUIRE(got.size() == 2);
    CHECK(got[0].status == 200);
    CHECK(got[0].reason == "OK");
    CHECK(got[0].version == "HTTP/1.0");
    CHECK(got[0].body == kPendingBody);
    CHECK(got[1].status == 200);
    CHECK(got[1].body == approved);
    CHECK(*got[1].header("content-type") == "application/json");
    // The listener then closes: EOF between responses is a clean "empty".
    CHECK(end == ParseStatus::error);
  }
}

TEST_CASE("responses that parse", "[http]") {
  struct Row {
    const char* name;
    std::string input; // followed by EOF
    int status;
    std::string reason, body;
  };
  const Row rows[] = {
      {"agent 404 (transcript 13)",
       "HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n"
       "{\"error\":\"not found\"}",
       404, "Not Found", "{\"error\":\"not found\"}"},
      {"body to EOF without Content-Length",
       "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"ok\"}", 200, "OK",
       "{\"status\":\"ok\"}"},
      {"empty body to EOF", "HTTP/1.1 200 OK\r\n\r\n", 200, "OK", ""},
      {"missing phrase", "HTTP/1.0 200\r\nContent-Length: 2\r\n\r\n{}", 200, "", "{}"},
      {"missing phrase, trailing space", "HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n", 200, "", ""},
      {"phrase with spaces",
       "HTTP/1.1 431 Request Header Fields Too Large\r\n"
       "Content-Length: 0\r\n\r\n",
       431, "Request Header Fields Too Large", ""},
      {"unknown code", "HTTP/1.0 299 Unknown\nContent-Length: 1\n\nx", 299, "Unknown", "x"},
      // Fuzzer find: a bare CR in the status line reached the reason phrase.
      {"bare CR in the status line", "HTTP/1.0 200 OK\rHTTP?1.1 200\r\nContent-Length: 0\r\n\r\n",
       200, "OK HTTP?1.1 200", ""},
      {"self-ping reads to EOF (transcript 13 #6)",
       "HTTP/1.0 200 OK\r\n\r\n{\"status\":\"ok\",\"staged\":false}", 200, "OK",
       "{\"status\":\"ok\",\"staged\":false}"},
  };
  for (const Row& r : rows) {
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{5}}) {
      INFO(r.name << " chunk=" << chunk);
      std::vector<std::string_view> pieces;
      std::string_view in = r.input;
      for (size_t off = 0; off < in.size(); off += chunk == 0 ? in.size() : chunk)
        pieces.push_back(in.substr(off, chunk == 0 ? in.size() : chunk));
      ParseStatus end;
      std::vector<Response> got = parse_responses(pieces, &end);
      REQUIRE(got.size() == 1);
      CHECK(got[0].status == r.status);
      CHECK(got[0].reason == r.reason);
      CHECK(got[0].body == r.body);
    }
  }
}

TEST_CASE("responses that fail", "[http]") {
  struct Row {
    const char* name;
    std::string input; // followed by EOF
    ParseError error;
    std::string message;
  };
  const Row rows[] = {
      {"nothing", "", ParseError::empty, "empty response"},
      {"short body", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n{}", ParseError::truncated,
       "truncated response"},
      {"headers cut", "HTTP/1.0 200 OK\r\nContent-", ParseError::truncated, "truncated response"},
      {"HTTP/2", "HTTP/2 200 OK\r\n\r\n", ParseError::bad_start_line, "malformed status line"},
      {"two-digit code", "HTTP/1.0 20 OK\r\n\r\n", ParseError::bad_start_line,
       "malformed status line"},
      {"four-digit code", "HTTP/1.0 2000 OK\r\n\r\n", ParseError::bad_start_line,
       "malformed status line"},
      {"code below 100", "HTTP/1.0 099 X\r\n\r\n", ParseError::bad_start_line,
       "malformed status line"},
      {"letters", "HTTP/1.0 abc OK\r\n\r\n", ParseError::bad_start_line, "malformed status line"},
      {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", ParseError::bad_start_line, "malformed status line"},
      {"no space after version", "HTTP/1.0200 OK\r\n\r\n", ParseError::bad_start_line,
       "malformed status line"},
      {"bad length", "HTTP/1.0 200 OK\r\nContent-Length: 1e3\r\n\r\n",
       ParseError::bad_content_length, "invalid content-length"},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
       ParseError::transfer_encoding, "transfer-encoding not supported"},
      {"length above 64 MiB", "HTTP/1.0 200 OK\r\nContent-Length: 67108865\r\n\r\n",
       ParseError::body_too_large, "response too large"},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    ParseStatus end;
    std::vector<Response> got = parse_responses({r.input}, &end);
    CHECK(got.empty());
    CHECK(end == ParseStatus::error);
    ResponseParser p;
    (void)p.feed(r.input);
    (void)p.finish();
    CHECK(p.error() == r.error);
    CHECK(p.error_message() == r.message);
  }
}

TEST_CASE("response body limit applies to EOF-delimited bodies too", "[http]") {
  ResponseLimits limits;
  limits.max_body = 8;
  ResponseParser p(limits);
  CHECK(p.feed("HTTP/1.0 200 OK\r\n\r\n12345678").status == ParseStatus::need_more);
  CHECK(p.finish() == ParseStatus::complete);
  CHECK(p.response().body == "12345678");

  p.reset();
  CHECK(p.feed("HTTP/1.0 200 OK\r\n\r\n1234").status == ParseStatus::need_more);
  CHECK(p.feed("56789").status == ParseStatus::error);
  CHECK(p.error() == ParseError::body_too_large);

  p.reset();
  CHECK(p.feed("HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n").status == ParseStatus::error);
  CHECK(p.error() == ParseError::body_too_large);
}
