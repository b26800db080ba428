// Async runs: records, locks, purge and the job supervisor; see async_job.hpp.
#include "agent/async_job.hpp"

#include "agent/executor_client.hpp"
#include "base/exit_codes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "agent/runner.hpp"
#include "base/files.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "event/loop.hpp"
#include "log/log.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::agent {

std::string async_lock_path(const std::string& runs_dir, const std::string& script) {
  return runs_dir + "/.locks/" + sanitize_file_component(script) + ".lock";
}

std::string async_record_path(const std::string& runs_dir, const std::string& owner,
                              const std::string& reqid) {
  return runs_dir + "/" + owner + "/" + reqid + ".json";
}

bool is_owner_id(const std::string& owner) {
  return is_agent_name(owner);
}

namespace {

bool ends_with_json(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0;
}

// Symbolic links are neither followed into nor judged by their target's age: the purge only
// ever deletes the record files the agent itself wrote.
size_t purge_dir(const std::string& dir, int64_t cutoff, bool descend) {
  auto names = list_dir(dir);
  if (!names.ok()) return 0;
  size_t removed = 0;
  for (const auto& name : *names) {
    std::string p = dir + "/" + name;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (descend && name[0] != '.' && S_ISDIR(st.st_mode)) {
      removed += purge_dir(p, cutoff, false);
      continue;
    }
    if (!ends_with_json(name) || !S_ISREG(st.st_mode)) continue;
    if (static_cast<int64_t>(st.st_mtime) < cutoff && remove_file(p).ok()) ++removed;
  }
  return removed;
}

} // namespace

size_t purge_async_records(const std::string& runs_dir, int64_t now, int64_t ttl) {
  return purge_dir(runs_dir, now - ttl, true);
}

Status write_async_record(const std::string& runs_dir, const proto::ResultRecord& rec) {
  if (!is_owner_id(rec.owner)) return error("invalid owner '" + rec.owner + "'");
  if (!is_reqid(rec.reqid)) return error("invalid reqid '" + rec.reqid + "'");
  CX_TRY(make_dirs(runs_dir + "/" + rec.owner, 0750));
  WriteOptions o;
  o.mode = 0640;
  return write_file_atomic(async_record_path(runs_dir, rec.owner, rec.reqid), rec.to_json(), o);
}

RecordLookup find_async_record(const std::string& runs_dir, const std::string& owner,
                               const std::string& reqid) {
  RecordLookup out;
  if (!is_owner_id(owner) || !is_reqid(reqid)) return out;
  auto read = [&](const std::string& path, bool own_dir) {
    // Records are only ever written by rename: a symbolic link or FIFO in their place is not
    // ours, and must neither be followed nor block the loop.
    auto text = read_regular_file(path);
    if (!text.ok()) return false;
    auto doc = json::parse(*text);
    if (!doc.ok() || !doc->IsObject()) return false;
    auto rec_owner = json::get_string_or(*doc, "owner", "");
    if (!rec_owner.ok() || *rec_owner != owner) {
      // A record of another dispatcher: in our own directory that can only be a hand-placed
      // file; in the flat legacy layout it is someone else's run.
      out.kind = RecordLookup::Kind::not_owner;
      (void)own_dir;
      return true;
    }
    out.kind = RecordLookup::Kind::found;
    out.json = std::move(*text);
    auto status = json::get_string_or(*doc, "status", "");
    out.status = status.ok() ? *status : "";
    return true;
  };
  if (read(async_record_path(runs_dir, owner, reqid), true)) return out;
  if (read(runs_dir + "/" + reqid + ".json", false)) return out;
  return out;
}

std::string AsyncJob::to_json() const {
  json::Writer w;
  w.begin_object()
      .member("runs_dir", runs_dir)
      .member("script", script)
      .member("path", path)
      .member("args", args)
      .member("context", context)
      .member("reqid", reqid)
      .member("owner", owner)
      .member("started", started)
      .member("stdin_timeout_ms", stdin_timeout_ms)
      .member("timeout_ms", timeout_ms)
      .member("output_limit", output_limit)
      .member("executor_socket", executor_socket)
      .end_object();
  return w.str();
}

Result<AsyncJob> AsyncJob::from_json(std::string_view text) {
  CX_ASSIGN_OR_RETURN(json::Document doc, json::parse(text));
  AsyncJob j;
  CX_ASSIGN_OR_RETURN(j.runs_dir, json::get_string(doc, "runs_dir"));
  CX_ASSIGN_OR_RETURN(j.script, json::get_string(doc, "script"));
  CX_ASSIGN_OR_RETURN(j.path, json::get_string(doc, "path"));
  CX_ASSIGN_OR_RETURN(j.args, json::get_string_array(doc, "args"));
  CX_ASSIGN_OR_RETURN(j.context, json::get_string(doc, "context"));
  CX_ASSIGN_OR_RETURN(j.reqid, json::get_string(doc, "reqid"));
  CX_ASSIGN_OR_RETURN(j.owner, json::get_string(doc, "owner"));
  CX_ASSIGN_OR_RETURN(j.started, json::get_string(doc, "started"));
  CX_ASSIGN_OR_RETURN(int64_t sto, json::get_int64(doc, "stdin_timeout_ms"));
  CX_ASSIGN_OR_RETURN(int64_t to, json::get_int64(doc, "timeout_ms"));
  CX_ASSIGN_OR_RETURN(int64_t lim, json::get_int64(doc, "output_limit"));
  if (sto < 0 || to < 0 || lim < 0) return error("negative limit in async job");
  j.stdin_timeout_ms = static_cast<uint64_t>(sto);
  j.timeout_ms = static_cast<uint64_t>(to);
  j.output_limit = static_cast<uint64_t>(lim);
  CX_ASSIGN_OR_RETURN(j.executor_socket, json::get_string(doc, "executor_socket"));
  if (!is_reqid(j.reqid) || !is_owner_id(j.owner) || j.path.empty() || j.path[0] != '/')
    return error("invalid async job");
  return j;
}

namespace {

std::string& self_exe_storage() {
  static std::string s;
  return s;
}

std::string resolve_argv0(const char* argv0) {
  if (!argv0 || !*argv0) return "";
  std::string a = argv0;
  if (a.find('/') != std::string::npos) return real_path(a).value_or(a);
  const char* path = std::getenv("PATH");
  for (const auto& dir : split(path ? path : "", ':')) {
    std::string cand = (dir.empty() ? "." : dir) + "/" + a;
    if (is_executable_file(cand)) return real_path(cand).value_or(cand);
  }
  return "";
}

} // namespace

void remember_argv0(const char* argv0) {
  if (::access("/proc/self/exe", X_OK) == 0)
    self_exe_storage() = "/proc/self/exe";
  else
    self_exe_storage() = resolve_argv0(argv0);
}

std::vector<std::string> supervisor_argv(const AsyncJob& job) {
  std::string exe = self_exe_storage();
  if (exe.empty()) exe = "/proc/self/exe";
  std::vector<std::string> argv{exe};
  // Through the multiplexer unless the binary itself is named after the agent applet.
  std::string base = basename(exe);
  if (base != "ctrl-exec-agent" && base != "cea") argv.push_back("ctrl-exec-agent");
  argv.insert(argv.end(), {kSupervisorMode, job.script, job.reqid});
  return argv;
}

int run_async_supervisor() {
  log::init("ctrl-exec-agent");
  // The lock taken by the agent: keep it for our lifetime, but not in the script.
  if (::fcntl(3, F_GETFD) >= 0) ::fcntl(3, F_SETFD, FD_CLOEXEC);
  std::string input;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n > 0) {
      input.append(buf, static_cast<size_t>(n));
      if (input.size() > (64u << 20)) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  auto job = AsyncJob::from_json(input);
  if (!job.ok()) {
    log::err("async-store-fail", {{"REQID", "(none)"}, {"ERROR", job.message()}});
    return kExitFailure;
  }
  RunSpec spec;
  spec.path = job->path;
  spec.args = job->args;
  spec.stdin_data = job->context;
  spec.stdin_timeout_ms = job->stdin_timeout_ms;
  spec.on_stdin_timeout = log_stdin_timeout;
  spec.timeout_ms = job->timeout_ms;
  spec.output_limit = static_cast<size_t>(job->output_limit);

  RunOutcome outcome;
  {
    event::Loop loop;
    auto done = [&](RunOutcome o) { outcome = std::move(o); };
    std::unique_ptr<event::Process> proc;
    std::unique_ptr<ExecutorCall> call;
    if (job->executor_socket.empty()) {
      proc = start_script(loop, spec, done);
    } else {
      ExecRequest er{job->reqid, job->owner, job->script, job->context, job->args};
      call = ExecutorCall::start(
          loop, job->executor_socket, er,
          [&](ExecResponse r) { done(outcome_from_executor(std::move(r))); },
          executor_call_timeout_ms(static_cast<int64_t>(job->timeout_ms / 1000)));
    }
    loop.run();
  }

  proto::ResultRecord rec;
  rec.reqid = job->reqid;
  rec.status = proto::kStatusDone;
  rec.script = job->script;
  rec.owner = job->owner;
  rec.started = job->started;
  rec.finished = iso8601_utc(unix_now());
  rec.exit = outcome.exit;
  rec.out = std::move(outcome.out);
  rec.err = std::move(outcome.err);
  rec.truncated = outcome.truncated;
  rec.timed_out = outcome.timed_out;
  if (outcome.timed_out) rec.error = outcome.error;
  Status st = write_async_record(job->runs_dir, rec);
  if (!st.ok()) {
    log::err("async-store-fail", {{"REQID", job->reqid}, {"ERROR", st.message()}});
    return kExitFailure;
  }
  return 0;
}

} // namespace cx::agent
