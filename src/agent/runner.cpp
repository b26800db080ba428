// The script runner; see runner.hpp.
#include "agent/runner.hpp"

#include <string_view>

#include "log/log.hpp"
#include "json/writer.hpp"

extern char** environ;

namespace cx::agent {

std::string context_json(const ScriptContext& c) {
  json::Writer w;
  w.begin_object()
      .member("script", c.script)
      .member("args", c.args)
      .member("reqid", c.reqid)
      .member("peer_ip", c.peer_ip)
      .member("username", c.username)
      .member("token", c.token)
      .member("dispatcher", c.dispatcher)
      .member("timestamp", c.timestamp)
      .end_object();
  return w.str();
}

std::vector<std::string> script_environment(char** parent_env) {
  std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  static constexpr std::string_view kKept[] = {"HOME", "LANG", "LC_ALL", "TZ",
                                               "TERM", "USER", "LOGNAME"};
  for (std::string_view name : kKept) {
    for (char** e = parent_env; e && *e; ++e) {
      std::string_view kv(*e);
      if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=') {
        env.emplace_back(kv);
        break;
      }
    }
  }
  return env;
}

void log_stdin_timeout(size_t unwritten) {
  log::warning("stdin-timeout", {{"BYTES", std::to_string(unwritten)}});
}

RunOutcome outcome_from(event::ProcessResult r, const RunSpec& spec) {
  using O = event::ProcessResult::Outcome;
  RunOutcome o;
  o.out = std::move(r.out);
  o.err = std::move(r.err);
  o.truncated = r.out_truncated || r.err_truncated;
  if (r.stdin_timed_out) o.stdin_unwritten = r.stdin_unwritten;
  switch (r.outcome) {
  case O::exited:
    o.exit = r.exit_code;
    break;
  case O::signaled:
    o.exit = 126;
    if (r.timed_out) {
      o.timed_out = true;
      o.error = "script timed out after " + std::to_string(spec.timeout_ms / 1000) + "s";
    }
    break;
  case O::exec_failed:
    o.exit = 127;
    o.error = "cannot execute '" + spec.path + "': " + r.error;
    o.err += *o.error + "\n";
    break;
  case O::spawn_failed:
    o.exit = -1;
    o.error = "cannot start '" + spec.path + "': " + r.error;
    o.err += *o.error + "\n";
    break;
  }
  return o;
}

std::unique_ptr<event::Process> start_script(event::Loop& loop, const RunSpec& spec,
                                             std::function<void(RunOutcome)> done) {
  event::ProcessOptions o;
  o.argv.push_back(spec.path);
  o.argv.insert(o.argv.end(), spec.args.begin(), spec.args.end());
  o.env = script_environment(environ);
  o.stdin_data = spec.stdin_data;
  o.stdin_timeout_ms = spec.stdin_timeout_ms;
  o.on_stdin_timeout = spec.on_stdin_timeout;
  o.output_limit = spec.output_limit;
  o.timeout_ms = spec.timeout_ms;
  o.on_output = spec.on_output;
  return event::Process::start(loop, std::move(o),
                               [spec, done = std::move(done)](event::ProcessResult r) {
                                 done(outcome_from(std::move(r), spec));
                               });
}

} // namespace cx::agent
