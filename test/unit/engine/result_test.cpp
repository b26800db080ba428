// Tests for src/engine/result.cpp (tag [engine]): rtt text, parse_host, reqids, the table of
// failure kinds (texts and states) and the canonicalisation of results (dispatcher-and-api
// §5.1-§5.3, §5.8; acceptance rows 14, 15, 16 and 19 of §12).
#include <catch2/catch.hpp>

#include <iterator>
#include <regex>
#include <set>

#include "base/random.hpp"
#include "engine/result.hpp"
#include "json/writer.hpp"

using namespace cx;
using namespace cx::engine;

TEST_CASE("format_rtt: sprintf('%.0fms') of the elapsed milliseconds", "[engine]") {
  struct Row {
    uint64_t us;
    const char* text;
  };
  const Row rows[] = {
      {0, "0ms"},
      {499, "0ms"},
      {500, "0ms"}, // 0.5 rounds half to even, as Perl's sprintf does
      {501, "1ms"},
      {1500, "2ms"},
      {2500, "2ms"},
      {12345, "12ms"},
      {12500, "12ms"},
      {12501, "13ms"},
      {999999, "1000ms"},
      {1203000, "1203ms"},
      {3600000000, "3600000ms"},
  };
  for (const auto& r : rows) {
    INFO(r.us << "us");
    CHECK(format_rtt(r.us) == r.text);
  }
}

TEST_CASE("parse_host: the last :digits is the port, else the default, else 7443", "[engine]") {
  struct Row {
    const char* target;
    int default_port;
    const char* host;
    int port;
  };
  const Row rows[] = {
      {"db-01", 7450, "db-01", 7450},
      {"db-01:9000", 7450, "db-01", 9000},
      {"db-01", 0, "db-01", 7443}, // no default: 7443
      {"db-01:9000", 0, "db-01", 9000},
      {"192.168.1.1:8080", 0, "192.168.1.1", 8080},
      {"192.168.1.1", 0, "192.168.1.1", 7443},
      {"a:b:9000", 0, "a:b", 9000}, // split on the last colon
      {"host:abc", 0, "host:abc", 7443},
      {"host:", 7450, "host:", 7450},
  };
  for (const auto& r : rows) {
    INFO(r.target << " default " << r.default_port);
    HostPort hp = parse_host(r.target, r.default_port);
    CHECK(hp.host == r.host);
    CHECK(hp.port == r.port);
  }
}

TEST_CASE("reqid: 16 lowercase hex characters, distinct across 20 draws", "[engine]") {
  const std::regex form("^[0-9a-f]{16}$");
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    std::string id = new_reqid();
    INFO(id);
    CHECK(std::regex_match(id, form));
    seen.insert(id);
  }
  CHECK(seen.size() == 20);
}

TEST_CASE("failure table: one row per kind, in the enum's order", "[engine]") {
  REQUIRE(kFailureTableSize == std::size(kErrorKinds));
  for (size_t i = 0; i < kFailureTableSize; ++i) {
    INFO(kind_name(kErrorKinds[i]));
    CHECK(kFailureTable[i].kind == kErrorKinds[i]);
  }
}

TEST_CASE("failure text: the five texts of 5.8 by kind, every other kind its own message",
          "[engine]") {
  // Each row was a row of the original's rewrite (an LWP or OS text in, the operator's text
  // out). The kind is now set where the error happens; the words no longer matter, so rows
  // whose words point elsewhere still give their kind's text.
  const std::string dns = "host '10.0.0.9' did not resolve - check the name or use an IP address";
  const std::string refused = "host '10.0.0.9' did not respond on port 7450 - connection refused "
                              "(agent not running, or wrong port?)";
  const std::string unreachable =
      "host '10.0.0.9' is unreachable - no route to host or network down";
  const std::string timeout = "host '10.0.0.9' did not respond - connection timed out";
  const std::string tls = "TLS handshake with '10.0.0.9' failed - certificate or trust mismatch";
  struct Row {
    ErrorKind kind;
    std::string error;
    std::string text;
  };
  const Row rows[] = {
      // 1. name resolution
      {ErrorKind::dns, "Bad hostname 'nope'", dns},
      {ErrorKind::dns, "getaddrinfo: Name or service not known", dns},
      {ErrorKind::dns, "nodename nor servname provided, or not known", dns},
      {ErrorKind::dns, "Temporary failure in name resolution", dns},
      {ErrorKind::dns, "cannot resolve host", dns},
      {ErrorKind::dns, "No address associated with hostname", dns},
      {ErrorKind::dns, "NAME OR SERVICE NOT KNOWN", dns},
      {ErrorKind::dns, "cannot resolve host 'nope.example': unknown node or service", dns},
      // 2. refused, naming the port
      {ErrorKind::refused, "connection refused", refused},
      {ErrorKind::refused, "Can't connect to 10.0.0.9:7450 (Connection refused)", refused},
      // 3. no route
      {ErrorKind::unreachable, "No route to host", unreachable},
      {ErrorKind::unreachable, "Network is unreachable", unreachable},
      {ErrorKind::unreachable, "host is unreachable", unreachable},
      // 4. timeouts: connecting, the whole exchange, and waiting for the answer
      {ErrorKind::timeout, "connection timed out", timeout},
      {ErrorKind::timeout, "timeout", timeout},
      {ErrorKind::read_timeout, "read timeout", timeout},
      {ErrorKind::timeout, "Timeout waiting for the agent", timeout},
      {ErrorKind::timeout, "(timeout)", timeout},
      {ErrorKind::timeout, "timed out: no complete response within 180s", timeout},
      // 5. TLS
      {ErrorKind::tls, "SSL connect attempt failed", tls},
      {ErrorKind::tls, "SSL error", tls},
      {ErrorKind::tls, "TLS alert received", tls},
      {ErrorKind::tls, "X509 - Certificate verification failed", tls},
      {ErrorKind::tls, "handshake failure", tls},
      {ErrorKind::tls, "verify failed", tls},
      {ErrorKind::tls,
       "TLS handshake failed: SSL - the peer notified us that the connection is going to be closed",
       tls},
      {ErrorKind::tls, "TLS handshake failed: connection closed by peer", tls},
      // The kind decides, not the words (the original tried its patterns in this order).
      {ErrorKind::dns, "Name or service not known (timeout)", dns},
      {ErrorKind::refused, "Connection refused during SSL connect", refused},
      {ErrorKind::unreachable, "No route to host: timed out", unreachable},
      {ErrorKind::timeout, "timed out during the TLS handshake", timeout},
      {ErrorKind::timeout, "TLS handshake failed: connection error: connection timed out", timeout},
      // Everything else passes through unchanged, whatever its words.
      {ErrorKind::other, "timeouts exceeded", "timeouts exceeded"},
      {ErrorKind::other, "sslfoo tlsbar", "sslfoo tlsbar"},
      {ErrorKind::denied, "403 Forbidden", "403 Forbidden"},
      {ErrorKind::http_status, "500 Internal Server Error", "500 Internal Server Error"},
      {ErrorKind::other, "no response", "no response"},
      {ErrorKind::other, "", ""},
      {ErrorKind::closed, "connection closed before a complete response",
       "connection closed before a complete response"},
      {ErrorKind::io, "connection reset by peer", "connection reset by peer"},
      // An agent that hangs up mid-handshake is not a trust problem (issue 11, defect 5).
      {ErrorKind::tls_closed, "TLS handshake failed: connection closed by peer",
       "TLS handshake with '10.0.0.9' failed - the agent closed the connection during the "
       "handshake (overloaded, or not accepting this address?)"},
      {ErrorKind::protocol, "malformed status line", "malformed status line"},
      {ErrorKind::config, "'/x.crt': certificate cannot be parsed",
       "'/x.crt': certificate cannot be parsed"},
      // A message with braces is not a template.
      {ErrorKind::other, "odd {host} text", "odd {host} text"},
  };
  for (const auto& r : rows) {
    INFO(kind_name(r.kind) << " " << r.error);
    CHECK(failure_text(error(r.kind, r.error), "10.0.0.9", 7450) == r.text);
  }
  // The connect host is interpolated in quotes, whatever it is.
  CHECK(failure_text(error(ErrorKind::refused, "connection refused"), "db-01", 7443) ==
        "host 'db-01' did not respond on port 7443 - connection refused (agent not running, or "
        "wrong port?)");
  CHECK(failure_text(error(ErrorKind::tls, "handshake failure"), "web-01.example.com", 7443) ==
        "TLS handshake with 'web-01.example.com' failed - certificate or trust mismatch");
  CHECK(failure_text(error(ErrorKind::dns, "x"), "{port}", 1) ==
        "host '{port}' did not resolve - check the name or use an IP address");
  CHECK(failure_text(Status(), "h", 1).empty());
}

TEST_CASE("failure state: timeouts, unreachable hosts, refusals, everything else an error",
          "[engine]") {
  struct Row {
    ErrorKind kind;
    HostState state;
  };
  const Row rows[] = {
      {ErrorKind::none, HostState::ok},           {ErrorKind::read_timeout, HostState::timeout},
      {ErrorKind::timeout, HostState::timeout},   {ErrorKind::refused, HostState::unreachable},
      {ErrorKind::dns, HostState::unreachable},   {ErrorKind::unreachable, HostState::unreachable},
      {ErrorKind::denied, HostState::denied},     {ErrorKind::tls, HostState::error},
      {ErrorKind::http_status, HostState::error}, {ErrorKind::closed, HostState::error},
      {ErrorKind::io, HostState::error},          {ErrorKind::protocol, HostState::error},
      {ErrorKind::config, HostState::error},      {ErrorKind::other, HostState::error},
      {ErrorKind::tls_closed, HostState::error},
  };
  REQUIRE(std::size(rows) == std::size(kErrorKinds));
  for (const auto& r : rows) {
    INFO(kind_name(r.kind));
    CHECK(state_name(failure_state(r.kind)) == state_name(r.state));
  }
}

TEST_CASE("canonicalize: host := name, reported_hostname only when it differs", "[engine]") {
  struct Row {
    const char* doc;
    std::optional<std::string> reported;
    HostState state;
    const char* canonical;
  };
  const Row rows[] = {
      // A success whose agent reported another name.
      {R"({"status":"ok","host":"web-01.example.com"})", std::string("web-01.example.com"),
       HostState::ok,
       R"({"host":"web-01","reported_hostname":"web-01.example.com","state":"ok","status":"ok"})"},
      // Equal to the name: dropped.
      {R"({"status":"ok","host":"web-01"})", std::string("web-01"), HostState::ok,
       R"({"host":"web-01","state":"ok","status":"ok"})"},
      // Empty: dropped.
      {R"({"status":"ok","host":""})", std::string(""), HostState::ok,
       R"({"host":"web-01","state":"ok","status":"ok"})"},
      // Nothing reported: a stale reported_hostname is dropped too.
      {R"({"status":"ok","reported_hostname":"old"})", std::nullopt, HostState::ok,
       R"({"host":"web-01","state":"ok","status":"ok"})"},
      // Error results get the same treatment: host set, reported_hostname kept when it differs.
      {R"({"status":"error","error":"no response from child"})", std::nullopt, HostState::error,
       R"({"error":"no response from child","host":"web-01","state":"error","status":"error"})"},
      {R"({"exit":-1,"error":"script not permitted","host":"agent-7"})", std::string("agent-7"),
       HostState::error,
       R"({"error":"script not permitted","exit":-1,"host":"web-01","reported_hostname":"agent-7","state":"error"})"},
      {R"({"exit":-1,"error":"x","host":"web-01"})", std::string("web-01"), HostState::denied,
       R"({"error":"x","exit":-1,"host":"web-01","state":"denied"})"},
      {R"({"status":"busy"})", std::nullopt, HostState::busy,
       R"({"host":"web-01","state":"busy","status":"busy"})"},
      {R"({})", std::nullopt, HostState::timeout, R"({"host":"web-01","state":"timeout"})"},
      {R"({})", std::nullopt, HostState::unreachable, R"({"host":"web-01","state":"unreachable"})"},
  };
  for (const auto& r : rows) {
    INFO(r.doc << " reported=" << r.reported.value_or("(none)"));
    HostResult hr;
    hr.name = "web-01";
    hr.state = r.state;
    hr.doc.Parse(r.doc);
    REQUIRE(hr.doc.IsObject());
    canonicalize(hr, r.reported);
    CHECK(json::canonical(hr.doc) == r.canonical);
  }
}

TEST_CASE("state names", "[engine]") {
  CHECK(state_name(HostState::ok) == "ok");
  CHECK(state_name(HostState::error) == "error");
  CHECK(state_name(HostState::timeout) == "timeout");
  CHECK(state_name(HostState::unreachable) == "unreachable");
  CHECK(state_name(HostState::busy) == "busy");
  CHECK(state_name(HostState::denied) == "denied");
}
