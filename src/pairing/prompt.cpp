// The interactive pairing prompt; see prompt.hpp.
#include "pairing/prompt.hpp"

#include <cstdio>

#include "base/strings.hpp"

namespace cx::pairing {

PromptCommand parse_prompt_command(std::string_view line) {
  PromptCommand c;
  std::string_view t = trim(line);
  c.text = std::string(t);
  using K = PromptCommand::Kind;
  if (t.empty()) return c;
  if (t == "quit" || t == "q") {
    c.kind = K::quit;
  } else if (t == "list" || t == "l") {
    c.kind = K::list;
  } else if (t == "s" || t == "skip") {
    c.kind = K::skip;
  } else if (t == "a" || t == "A") {
    c.kind = K::approve;
  } else if (t == "d" || t == "D") {
    c.kind = K::deny;
  } else if ((t[0] == 'a' || t[0] == 'd') && t.size() > 1 && is_digits(t.substr(1))) {
    auto n = parse_uint(t.substr(1));
    if (n && *n >= 1 && *n <= 1000000) {
      c.kind = t[0] == 'a' ? K::approve : K::deny;
      c.position = static_cast<int>(*n);
    } else {
      c.kind = K::unknown;
    }
  } else {
    c.kind = K::unknown;
  }
  return c;
}

std::string format_request_prompt(const state::PairingRequest& r) {
  std::string s = "Pairing request from " + r.hostname + " (" + r.ip + ") - ID: " + r.id + "\n";
  // Received comes right after the header, as in DOCKER.md and the issue; the original
  // prints the code first (docs/COMPATIBILITY.md).
  s += "  Received: " + r.received + "\n";
  s += "  Code:     " + r.code + "   (verify this matches the agent display)\n";
  s += "  Reported name: " + r.hostname + "\n";
  s += "  Source IP: " + (r.source_ip.empty() ? std::string("?") : r.source_ip) + "\n";
  if (!r.ip.empty() && r.ip != r.source_ip) s += "  Reported IP: " + r.ip + " (differs - NAT?)\n";
  if (r.reverse_dns.empty())
    s += "  Reverse DNS: (none resolvable from this dispatcher)\n";
  else
    s += "  Reverse DNS: " + r.reverse_dns +
         (r.reverse_confirmed ? " (forward-confirmed)\n" : " (unconfirmed)\n");
  bool name_ok = r.reverse_confirmed && to_lower(r.reverse_dns) == to_lower(r.hostname);
  if (name_ok) {
    s += "  The reported name matches this dispatcher's DNS: approving registers it by name.\n";
  } else if (!r.source_ip.empty()) {
    s += "  If '" + r.hostname + "' does not resolve from this dispatcher, approve and then run:\n";
    s += "    ctrl-exec-dispatcher edit-agent " + r.hostname + " --lookup-by ip --ip " +
         r.source_ip + "\n";
  }
  s += "Accept, Deny, or Skip? [a/d/s]: ";
  return s;
}

std::string format_prompt(const std::vector<state::PairingRequest>& pending) {
  if (pending.empty()) return "No pending pairing requests.\nWaiting... (Commands: list, quit)\n";
  if (pending.size() == 1) return format_request_prompt(pending.front());
  std::string s = std::to_string(pending.size()) + " pending pairing requests:\n";
  for (size_t i = 0; i < pending.size(); ++i) {
    const auto& r = pending[i];
    char line[512];
    std::snprintf(line, sizeof line, "  [%zu] %-30s  %-16s  code: %s  %s\n", i + 1,
                  r.hostname.c_str(), r.ip.c_str(), r.code.c_str(), r.received.c_str());
    s += line;
  }
  s += "Command (a1/d1/a2/d2/list/quit): ";
  return s;
}

std::string unknown_command_text(std::string_view cmd) {
  return "Unknown command '" + std::string(cmd) +
         "'. Commands: a/d/s/list/quit or a1/d1 for multiple.\n";
}

} // namespace cx::pairing
