// The CLI's human output; see format.hpp.
#include "engine/format.hpp"

#include <algorithm>
#include <cstdio>

#include "base/strings.hpp"
#include "engine/result.hpp"
#include "proto/agent_wire.hpp"
#include "state/run_store.hpp"

namespace cx::engine {

namespace {

bool has_non_space(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return !std::isspace(c); });
}

// Perl truth of a string member ("" and "0" are false).
bool truthy_string(const std::optional<std::string>& s) {
  return s && !s->empty() && *s != "0";
}

std::string host_label(const json::Value& r) {
  std::string host = string_member(r, "host").value_or("?");
  if (auto rep = string_member(r, "reported_hostname")) host += " (" + *rep + ")";
  return host;
}

// stdout as-is plus a newline if it lacks one; "    STDERR: <stderr>\n" printed raw.
void append_output(std::string& out, const json::Value& r, bool require_truthy) {
  auto so = string_member(r, "stdout");
  if (so && (!require_truthy || truthy_string(so)) && has_non_space(*so)) {
    out += *so;
    if (so->back() != '\n') out += "\n";
  }
  auto se = string_member(r, "stderr");
  if (se && (!require_truthy || truthy_string(se)) && has_non_space(*se))
    out += "    STDERR: " + *se + "\n";
}

// A scalar member as Perl would print it ("" when absent).
std::string scalar(const json::Value& r, std::string_view key, std::string_view fallback) {
  const json::Value* v = json::find(r, key);
  if (!v || v->IsNull()) return std::string(fallback);
  if (auto s = json::scalar_string(*v)) return *s;
  if (v->IsBool()) return v->GetBool() ? "1" : "";
  return std::string(fallback);
}

} // namespace

std::string format_run_results(const std::vector<const json::Value*>& results, bool with_output) {
  std::string out;
  for (const json::Value* r : results) {
    int64_t exit = int_member(*r, "exit", -1);
    out += strprintf("==> %s  [%s  exit:%lld  %s  req:%s]\n", host_label(*r).c_str(),
                     exit == 0 ? "OK" : "FAIL", static_cast<long long>(exit),
                     scalar(*r, "rtt", "").c_str(), scalar(*r, "reqid", "").c_str());
    if (auto e = string_member(*r, "error"); truthy_string(e)) out += "    ERROR: " + *e + "\n";
    if (with_output) append_output(out, *r, true);
  }
  return out;
}

std::string format_ping_results(const std::vector<const json::Value*>& results) {
  std::string out = strprintf("%-30s  %-8s  %-8s  %-28s  %s\n", "HOST", "STATUS", "RTT",
                              "CERT EXPIRY", "VERSION");
  out += std::string(85, '-') + "\n";
  for (const json::Value* r : results) {
    out += strprintf("%-30s  %-8s  %-8s  %-28s  %s\n", host_label(*r).c_str(),
                     scalar(*r, "status", "error").c_str(), scalar(*r, "rtt", "?").c_str(),
                     scalar(*r, "expiry", "?").c_str(), scalar(*r, "version", "?").c_str());
  }
  return out;
}

std::string format_async_submit(const std::string& reqid,
                                const std::vector<const json::Value*>& results) {
  std::string out = "Submitted async run  req:" + reqid + "\n";
  for (const json::Value* r : results) {
    std::string status = string_member(*r, "status").value_or("error");
    if (status == proto::kStatusAccepted)
      out += "==> " + host_label(*r) + "  [accepted  " + scalar(*r, "rtt", "") + "]\n";
    else if (status == proto::kStatusBusy)
      out += "==> " + host_label(*r) + "  [BUSY: " + scalar(*r, "error", "already running") + "]\n";
    else
      out += "==> " + host_label(*r) + "  [ERROR: " + scalar(*r, "error", "submit failed") + "]\n";
  }
  out += "Check progress with: ctrl-exec-dispatcher status " + reqid + "\n";
  return out;
}

std::string format_status(const json::Value& record) {
  std::string out =
      strprintf("Request %s  (script: %s)  [%s]\n", scalar(record, "reqid", "?").c_str(),
                scalar(record, "script", "?").c_str(),
                truthy_member(record, "complete") ? "COMPLETE" : "PENDING");
  // Ours: an API run whose dispatch had not ended (submitted), or never will (unknown).
  if (std::string state = state::run_state(record); !state.empty()) {
    out += "    [" + to_upper(state) + "]";
    if (const json::Value* e = json::find(record, "error"); e && e->IsString())
      out += " " + scalar(record, "error", "");
    out += "\n";
  }
  if (string_member(record, "mode") == "sync") {
    if (const json::Value* rs = json::find(record, "results"); rs && rs->IsArray()) {
      std::vector<const json::Value*> list;
      for (const auto& r : rs->GetArray())
        if (r.IsObject()) list.push_back(&r);
      return out + format_run_results(list);
    }
  }
  const json::Value* hosts = json::find(record, "hosts");
  if (!hosts || !hosts->IsObject()) return out;
  std::vector<std::pair<std::string, const json::Value*>> sorted;
  for (const auto& m : hosts->GetObject())
    sorted.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()), &m.value);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [name, h] : sorted) {
    std::string status = string_member(*h, "status").value_or("unknown");
    if (status == proto::kStatusDone) {
      out += strprintf("==> %s  [done  exit:%lld]\n", name.c_str(),
                       static_cast<long long>(int_member(*h, "exit", -1)));
      append_output(out, *h, false);
    } else if (status == proto::kStatusAccepted || status == proto::kStatusRunning) {
      out += "==> " + name + "  [" + status + "]\n";
      if (const json::Value* fe = json::find(*h, "fetch_error"); fe && !fe->IsNull())
        out += "    (fetch pending: " + scalar(*h, "fetch_error", "") + ")\n";
    } else {
      out += "==> " + name + "  [" + to_upper(status) + "]\n";
      if (const json::Value* e = json::find(*h, "error"); e && !e->IsNull())
        out += "    " + scalar(*h, "error", "") + "\n";
    }
  }
  return out;
}

} // namespace cx::engine
