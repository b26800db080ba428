// The auth-hook runner; see hook.hpp.
#include "hook/hook.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "event/process.hpp"
#include "log/log.hpp"
#include "json/writer.hpp"

extern char** environ;

namespace cx::hook {

std::string stdin_json(const Request& req, const std::string& timestamp) {
  json::Writer w;
  w.begin_object()
      .member("action", req.action)
      .member("script", req.script)
      .member("hosts", req.hosts)
      .member("args", req.args)
      .member("username", req.username)
      .member("token", req.token)
      .member("source_ip", req.source_ip)
      .member("dispatcher", req.dispatcher)
      .member("dispatcher_serial", req.dispatcher_serial)
      .member("reqid", req.reqid)
      .key("submitter");
  if (req.submitter) {
    w.begin_object()
        .member("username", req.submitter->username)
        .member("source_ip", req.submitter->source_ip)
        .end_object();
  } else {
    w.null();
  }
  if (req.tags) {
    w.key("tags").begin_object();
    for (const auto& [k, v] : *req.tags)
      w.member(k, v);
    w.end_object();
  }
  w.member("timestamp", timestamp).end_object();
  return w.str();
}

std::string tags_text(const std::vector<std::pair<std::string, std::string>>& tags) {
  std::string out;
  for (const auto& [k, v] : tags)
    out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

std::vector<std::string> environment(const Request& req, const std::string& timestamp,
                                     char** parent_env) {
  std::vector<std::string> env;
  // The hook sees our whole environment, except stale ENVEXEC_* values, which we set below.
  for (char** e = parent_env; e && *e; ++e)
    if (std::string_view(*e).rfind("ENVEXEC_", 0) != 0) env.emplace_back(*e);
  json::Writer args;
  args.string_array(req.args);
  auto set = [&](const char* k, const std::string& v) { env.push_back(std::string(k) + "=" + v); };
  set("ENVEXEC_ACTION", req.action);
  set("ENVEXEC_SCRIPT", req.script);
  set("ENVEXEC_HOSTS", join(req.hosts, ","));
  set("ENVEXEC_ARGS", join(req.args, " "));
  set("ENVEXEC_ARGS_JSON", args.str());
  set("ENVEXEC_USERNAME", req.username);
  set("ENVEXEC_TOKEN", req.token);
  set("ENVEXEC_SOURCE_IP", req.source_ip);
  set("ENVEXEC_DISPATCHER", req.dispatcher);
  set("ENVEXEC_DISPATCHER_SERIAL", req.dispatcher_serial);
  set("ENVEXEC_REQID", req.reqid);
  set("ENVEXEC_SUBMITTER", req.submitter ? req.submitter->username : "");
  set("ENVEXEC_SUBMITTER_IP", req.submitter ? req.submitter->source_ip : "");
  set("ENVEXEC_TIMESTAMP", timestamp);
  set("ENVEXEC_TAGS", req.tags ? tags_text(*req.tags) : "");
  return env;
}

Decision decide(int exit_code, int signal, bool timed_out, bool exec_failed) {
  if (timed_out || exec_failed) return {false, "denied", 1};
  if (signal) return {false, "hook killed by signal " + std::to_string(signal), 1};
  switch (exit_code) {
  case 0:
    return {true, "", 0};
  case 1:
    return {false, "denied", 1};
  case 2:
    return {false, "bad credentials", 2};
  case 3:
    return {false, "insufficient privilege", 3};
  default:
    return {false, "hook exited " + std::to_string(exit_code), exit_code};
  }
}

struct Check::State {
  Check::DoneFn done;
  std::unique_ptr<event::Process> process;
  std::unique_ptr<event::Timer> defer;
  bool finished = false;
};

namespace {
std::string user_field(const std::string& u) {
  return u.empty() ? "(none)" : u;
}

void log_decision(const Request& req, const Decision& d) {
  if (d.allowed) {
    log::info("auth", {{"AUTHACTION", req.action},
                       {"IP", req.source_ip},
                       {"RESULT", "pass"},
                       {"USER", user_field(req.username)}});
  } else {
    log::warning("auth", {{"AUTHACTION", req.action},
                          {"IP", req.source_ip},
                          {"REASON", d.reason},
                          {"RESULT", "deny"},
                          {"USER", user_field(req.username)}});
  }
}

void log_no_hook(const Request& req, const char* reason, bool pass) {
  log::Fields f{{"AUTHACTION", req.action},
                {"DISPATCHER", ""},
                {"IP", req.source_ip},
                {"REASON", reason},
                {"RESULT", pass ? "pass" : "deny"},
                {"USER", user_field(req.username)}};
  if (pass)
    log::info("auth", f);
  else
    log::warning("auth", f);
}
} // namespace

std::unique_ptr<Check> Check::start(event::Loop& loop, const Policy& policy, Request req,
                                    DoneFn done) {
  std::unique_ptr<Check> check(new Check());
  auto st = std::make_shared<State>();
  check->state_ = st;
  st->done = std::move(done);

  // Decisions made without running anything are still delivered from the loop.
  auto deliver_later = [&loop, st](Decision d) {
    st->defer = std::make_unique<event::Timer>(loop);
    st->defer->start(0, [st, d] {
      if (st->finished) return;
      st->finished = true;
      auto fn = std::move(st->done);
      if (fn) fn(d);
    });
  };

  if (policy.hook_path.empty()) {
    Decision d;
    if (policy.caller == Caller::cli || policy.caller == Caller::agent) {
      d = {true, "", 0};
      if (policy.caller == Caller::cli) log_no_hook(req, "no-hook-cli", true);
    } else if (policy.api_default_allow) {
      d = {true, "", 0};
      log_no_hook(req, "no-hook-allow", true);
    } else {
      d = {false, "no auth hook configured", 1};
      log_no_hook(req, "no-hook-deny", false);
    }
    deliver_later(d);
    return check;
  }
  if (!is_executable_file(policy.hook_path)) {
    log::err("auth",
             {{"HOOK", policy.hook_path}, {"REASON", "hook-not-executable"}, {"RESULT", "error"}});
    deliver_later({false, "auth hook not found or not executable: " + policy.hook_path, 1});
    return check;
  }

  std::string ts = iso8601_utc(unix_now());
  event::ProcessOptions o;
  o.argv = {policy.hook_path};
  o.env = environment(req, ts, environ);
  o.stdin_data = stdin_json(req, ts);
  o.capture_output = false; // the hook's output goes to /dev/null
  // The timeout covers writing stdin and waiting, as in the original.
  o.timeout_ms = static_cast<uint64_t>(policy.timeout_s) * 1000;
  unsigned timeout_s = policy.timeout_s;
  st->process = event::Process::start(
      loop, std::move(o), [st, req = std::move(req), timeout_s](event::ProcessResult r) {
        if (st->finished) return;
        st->finished = true;
        using O = event::ProcessResult::Outcome;
        if (r.timed_out)
          log::warning("auth-hook-timeout", {{"TIMEOUT", std::to_string(timeout_s)}});
        Decision d = decide(r.exit_code, r.outcome == O::signaled ? r.signal : 0, r.timed_out,
                            r.outcome == O::exec_failed || r.outcome == O::spawn_failed);
        log_decision(req, d);
        auto fn = std::move(st->done);
        if (fn) fn(d);
      });
  return check;
}

Check::~Check() {
  if (state_) {
    state_->finished = true;
    state_->done = nullptr;
    state_->process.reset(); // kills a hook that is still running
    state_->defer.reset();
  }
}

} // namespace cx::hook
