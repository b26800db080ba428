// Tests for src/pairing/prompt.cpp (tag [pairing]): the operator's commands and the prompt text.
#include <catch2/catch.hpp>

#include "pairing/prompt.hpp"

using namespace cx::pairing;
using K = PromptCommand::Kind;

namespace {
cx::state::PairingRequest request(const std::string& id, const std::string& host,
                                  const std::string& ip, const std::string& source) {
  cx::state::PairingRequest r;
  r.id = id;
  r.hostname = host;
  r.ip = ip;
  r.source_ip = source;
  r.received = "2026-03-06T12:00:00Z";
  r.code = "609527";
  return r;
}
} // namespace

TEST_CASE("prompt: commands", "[pairing]") {
  struct Row {
    const char* line;
    K kind;
    int position;
  };
  const Row rows[] = {
      {"", K::empty, 0},        {"   ", K::empty, 0},
      {"q", K::quit, 0},        {"quit", K::quit, 0},
      {" quit \t", K::quit, 0}, {"l", K::list, 0},
      {"list", K::list, 0},     {"a", K::approve, 0},
      {"A", K::approve, 0},     {"d", K::deny, 0},
      {"D", K::deny, 0},        {"a1", K::approve, 1},
      {"d2", K::deny, 2},       {" a12 ", K::approve, 12},
      {"s", K::skip, 0},        {"skip", K::skip, 0},
      {"a0", K::unknown, 0},    {"A1", K::unknown, 0},
      {"ax", K::unknown, 0},    {"approve", K::unknown, 0},
      {"Q", K::unknown, 0},     {"a99999999999", K::unknown, 0},
  };
  for (const auto& r : rows) {
    INFO("'" << r.line << "'");
    auto c = parse_prompt_command(r.line);
    CHECK(c.kind == r.kind);
    CHECK(c.position == r.position);
  }
  CHECK(unknown_command_text("zz") ==
        "Unknown command 'zz'. Commands: a/d/s/list/quit or a1/d1 for multiple.\n");
}

TEST_CASE("prompt: one request, as DOCKER.md shows it plus the code", "[pairing]") {
  auto r = request("00c9845e0001", "agent", "172.18.0.3", "172.18.0.3");
  CHECK(format_prompt({r}) ==
        "Pairing request from agent (172.18.0.3) - ID: 00c9845e0001\n"
        "  Received: 2026-03-06T12:00:00Z\n"
        "  Code:     609527   (verify this matches the agent display)\n"
        "  Reported name: agent\n"
        "  Source IP: 172.18.0.3\n"
        "  Reverse DNS: (none resolvable from this dispatcher)\n"
        "  If 'agent' does not resolve from this dispatcher, approve and then run:\n"
        "    ctrl-exec-dispatcher edit-agent agent --lookup-by ip --ip 172.18.0.3\n"
        "Accept, Deny, or Skip? [a/d/s]: ");

  // A NAT'd agent and a confirmed reverse name that matches.
  auto nat = request("ab", "web.example", "10.0.0.5", "192.0.2.7");
  nat.reverse_dns = "web.example";
  nat.reverse_confirmed = 1;
  std::string p = format_request_prompt(nat);
  CHECK(p.find("  Reported IP: 10.0.0.5 (differs - NAT?)\n") != std::string::npos);
  CHECK(p.find("  Reverse DNS: web.example (forward-confirmed)\n") != std::string::npos);
  CHECK(p.find("approving registers it by name") != std::string::npos);
  nat.reverse_confirmed = 0;
  CHECK(format_request_prompt(nat).find("  Reverse DNS: web.example (unconfirmed)\n") !=
        std::string::npos);
}

TEST_CASE("prompt: several requests and none", "[pairing]") {
  auto a = request("aa", "web-01", "10.0.0.1", "10.0.0.1");
  auto b = request("bb", "db-01", "10.0.0.2", "10.0.0.2");
  CHECK(format_prompt({a, b}) ==
        "2 pending pairing requests:\n"
        "  [1] web-01                          10.0.0.1          code: 609527  "
        "2026-03-06T12:00:00Z\n"
        "  [2] db-01                           10.0.0.2          code: 609527  "
        "2026-03-06T12:00:00Z\n"
        "Command (a1/d1/a2/d2/list/quit): ");
  CHECK(format_prompt({}) == "No pending pairing requests.\nWaiting... (Commands: list, quit)\n");
}
