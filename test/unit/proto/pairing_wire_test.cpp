// Tests for src/proto/pairing_wire.cpp (tag [proto]): the 7444 request validation table, the
// response bodies byte for byte, and the agent's acceptance rule.
#include <catch2/catch.hpp>

#include "proto/pairing_wire.hpp"

using namespace cx::proto;

TEST_CASE("pairing wire: request validation (dispatcher-and-api 8, steps 3-5)", "[proto]") {
  struct Row {
    std::string body;
    std::string_view reason; // empty: accepted
  };
  const Row rows[] = {
      {R"({"hostname":"web-01","csr":"PEM"})", ""},
      {R"({"hostname":"web-01.example.com","csr":"PEM","nonce":"ab"})", ""},
      {R"({"hostname":123,"csr":"PEM"})", ""}, // Perl stringifies the number
      {R"({"hostname":"web-01"})", kPairInvalidRequest},
      {R"({"csr":"PEM"})", kPairInvalidRequest},
      {R"({"hostname":"","csr":"PEM"})", kPairInvalidRequest},
      {R"({"hostname":"web","csr":""})", kPairInvalidRequest},
      {R"({"hostname":"0","csr":"PEM"})", kPairInvalidRequest}, // Perl-false
      {R"({"hostname":"web","csr":null})", kPairInvalidRequest},
      {R"({"hostname":["web"],"csr":"PEM"})", kPairInvalidRequest},
      {R"([1,2])", kPairInvalidRequest},
      {R"(not json)", kPairInvalidRequest},
      {"", kPairInvalidRequest},
      {R"({"hostname":"../etc","csr":"PEM"})", kPairInvalidHostname},
      {R"({"hostname":"a b","csr":"PEM"})", kPairInvalidHostname},
      {R"({"hostname":"-x","csr":"PEM"})", kPairInvalidHostname},
      {R"({"hostname":".hidden","csr":"PEM"})", kPairInvalidHostname},
      // Too long for a registry file name: refused here, never queued (issue 11, defect 2).
      {R"({"hostname":")" + std::string(300, 'a') + R"(","csr":"PEM"})", kPairInvalidHostname},
      {R"({"hostname":")" + std::string(240, 'a') + R"(","csr":"PEM"})", kPairInvalidHostname},
      {R"({"hostname":")" + std::string(239, 'a') + R"(","csr":"PEM"})", ""},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto p = parse_pair_request(r.body);
    CHECK(p.reason == r.reason);
    CHECK(p.request.has_value() == r.reason.empty());
  }
}

TEST_CASE("pairing wire: optional members are kept only when valid", "[proto]") {
  struct Row {
    const char* extra;
    std::optional<std::string> lookup_by;
    std::optional<int> port;
    std::optional<std::string> ip;
    std::optional<std::string> nonce;
  };
  const Row rows[] = {
      {"", std::nullopt, std::nullopt, std::nullopt, std::nullopt},
      {R"(,"lookup_by":"ip","port":7450,"ip":"10.0.0.5","nonce":"n1")", "ip", 7450, "10.0.0.5",
       "n1"},
      {R"(,"lookup_by":"hostname","port":"7443","ip":"::1")", "hostname", 7443, "::1",
       std::nullopt},
      {R"(,"lookup_by":"IP","port":0,"ip":"host.example")", std::nullopt, std::nullopt,
       std::nullopt, std::nullopt},
      {R"(,"lookup_by":"dns","port":65536,"ip":"1.2.3")", std::nullopt, std::nullopt, std::nullopt,
       std::nullopt},
      {R"(,"port":-1,"ip":"","nonce":5)", std::nullopt, std::nullopt, std::nullopt, std::nullopt},
      {R"(,"port":"80x","ip":"fe80::1","nonce":null)", std::nullopt, std::nullopt, "fe80::1",
       std::nullopt},
      {R"(,"port":65535,"ip":"999.1.1.1")", std::nullopt, 65535, "999.1.1.1", std::nullopt},
  };
  for (const auto& r : rows) {
    std::string body = std::string(R"({"hostname":"h","csr":"C")") + r.extra + "}";
    INFO(body);
    auto p = parse_pair_request(body);
    REQUIRE(p.request);
    CHECK(p.request->hostname == "h");
    CHECK(p.request->csr == "C");
    CHECK(p.request->lookup_by == r.lookup_by);
    CHECK(p.request->port == r.port);
    CHECK(p.request->ip == r.ip);
    CHECK(p.request->nonce == r.nonce);
  }
}

TEST_CASE("pairing wire: the agent's request round-trips", "[proto]") {
  PairRequest req;
  req.hostname = "web-01";
  req.csr = "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n";
  req.nonce = "00112233445566778899aabbccddeeff";
  req.port = 7443;
  req.ip = "127.0.0.1";
  CHECK(pair_request_json(req) ==
        R"({"hostname":"web-01","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAA==\n)"
        R"(-----END CERTIFICATE REQUEST-----\n","nonce":"00112233445566778899aabbccddeeff",)"
        R"("port":7443,"ip":"127.0.0.1"})");
  req.lookup_by = "ip";
  auto p = parse_pair_request(pair_request_json(req));
  REQUIRE(p.request);
  CHECK(p.request->csr == req.csr);
  CHECK(p.request->nonce == req.nonce);
  CHECK(p.request->lookup_by == "ip");
  CHECK(p.request->port == 7443);
  CHECK(p.request->ip == "127.0.0.1");
}

TEST_CASE("pairing wire: response bodies", "[proto]") {
  // Transcript 17's pending body has the same 47 bytes (the original's key order is random).
  CHECK(pair_pending_json("64dbe4662559d086") ==
        R"({"status":"pending","reqid":"64dbe4662559d086"})");
  CHECK(pair_pending_json("64dbe4662559d086").size() == 47);
  CHECK(pair_error_json(kPairQueueFull) == R"({"status":"error","reason":"pairing queue full"})");
  CHECK(pair_error_json(kPairTooLarge) == R"({"status":"error","reason":"request too large"})");
  CHECK(pair_denied_json(kPairRejected) ==
        R"({"status":"denied","reason":"rejected by operator"})");
  CHECK(pair_denied_json(kPairTimeout) == R"({"status":"denied","reason":"approval timeout"})");
  PairApproval a{"CERT\n", "CA\n", "n1", "7f3a9c", "vm"};
  CHECK(pair_approved_json(a) ==
        R"({"status":"approved","cert":"CERT\n","ca":"CA\n",)"
        R"("nonce":"n1","dispatcher_serial":"7f3a9c","dispatcher_id":"vm"})");
  a.nonce.reset();
  CHECK(pair_approved_json(a).find(R"("nonce":null)") != std::string::npos);
}

TEST_CASE("pairing wire: the agent's acceptance of the second response", "[proto]") {
  const std::string nonce = "00112233445566778899aabbccddeeff";
  struct Row {
    std::string body;
    const char* error; // nullptr: accepted
  };
  const Row rows[] = {
      {R"({"status":"approved","cert":"C","ca":"A","nonce":")" + nonce + R"("})", nullptr},
      {R"({"status":"approved","cert":"C","ca":"A","nonce":"ffff"})",
       "nonce mismatch in pairing result"},
      {R"({"status":"approved","cert":"C","ca":"A"})", "nonce mismatch in pairing result"},
      {R"({"status":"approved","cert":"","ca":"A","nonce":")" + nonce + R"("})",
       "pairing result carries no certificate or no CA certificate"},
      {R"({"status":"denied","reason":"rejected by operator"})", "rejected by operator"},
      {R"({"status":"denied","reason":"approval timeout"})", "approval timeout"},
      {R"({"status":"denied"})", "denied"},
      {R"({"status":"error","reason":"pairing queue full"})", "pairing queue full"},
      {R"({})", "denied"},
  };
  for (const auto& r : rows) {
    INFO(r.body);
    auto resp = parse_pair_response(r.body);
    REQUIRE(resp.ok());
    auto st = check_pair_result(*resp, nonce);
    if (r.error)
      CHECK(st.message() == r.error);
    else
      CHECK(st.ok());
  }
  CHECK(parse_pair_response("[]").message() == "invalid pairing response: not a JSON object");
  CHECK(parse_pair_response("<html>").message().rfind("invalid pairing response: invalid JSON",
                                                      0) == 0);
  auto pending = parse_pair_response(pair_pending_json("0123456789abcdef"));
  REQUIRE(pending.ok());
  CHECK(pending->status == "pending");
  CHECK(pending->reqid == "0123456789abcdef");
}
