// Repair of async records whose supervisor is gone; see async_repair.hpp.
#include "agent/async_repair.hpp"

#include <sys/stat.h>

#include "agent/async_job.hpp"
#include "base/files.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"
#include "json/json.hpp"

namespace cx::agent {

namespace {

constexpr size_t kMaxRunningRecordBytes = 16 * 1024;
// Lock probes per loop iteration: each is an open, a flock and a close.
constexpr size_t kProbesPerSlice = 64;

bool is_json_name(const std::string& name) {
  return name.size() > 5 && name[0] != '.' && name.compare(name.size() - 5, 5, ".json") == 0;
}

std::string member(const json::Value& doc, const char* key) {
  auto v = json::get_string_or(doc, key, "");
  return v.ok() ? *v : "";
}

// The record at `path` if it is a regular file that says running.
std::optional<RunningRecord> read_running(const std::string& path) {
  auto text = read_regular_file(path, kMaxRunningRecordBytes);
  // Most records are done: the word is looked for before the JSON is parsed.
  if (!text.ok() || text->find("\"running\"") == std::string::npos) return std::nullopt;
  auto doc = json::parse(*text);
  if (!doc.ok() || !doc->IsObject() || member(*doc, "status") != proto::kStatusRunning)
    return std::nullopt;
  RunningRecord r{path, member(*doc, "reqid"), member(*doc, "script"), member(*doc, "owner"),
                  member(*doc, "started")};
  if (r.reqid.empty() || r.script.empty()) return std::nullopt;
  return r;
}

void scan_dir(const std::string& dir, bool descend, std::vector<RunningRecord>& out) {
  auto names = list_dir(dir);
  if (!names.ok()) return;
  for (const auto& name : *names) {
    std::string p = dir + "/" + name;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (descend && name[0] != '.' && S_ISDIR(st.st_mode)) {
      scan_dir(p, false, out);
      continue;
    }
    if (!is_json_name(name) || !S_ISREG(st.st_mode) ||
        static_cast<size_t>(st.st_size) > kMaxRunningRecordBytes)
      continue;
    if (auto r = read_running(p)) out.push_back(std::move(*r));
  }
}

} // namespace

std::vector<RunningRecord> find_running_records(const std::string& runs_dir) {
  std::vector<RunningRecord> out;
  scan_dir(runs_dir, true, out);
  return out;
}

LockProbe probe_async_lock(const std::string& runs_dir, const std::string& script) {
  std::string path = async_lock_path(runs_dir, script);
  struct stat st;
  // A missing lock was removed by hand (the agent never deletes one): nothing can be told.
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return LockProbe::unknown;
  FileLock lock;
  Status s = lock.lock_existing(path, false);
  if (s.ok()) {
    lock.unlock();
    return LockProbe::free;
  }
  return lock.busy() ? LockProbe::held : LockProbe::unknown;
}

Result<bool> mark_interrupted(const RunningRecord& rec, const std::string& finished) {
  auto now = read_running(rec.path);
  // Done meanwhile, removed, or another job's record under the same name: left alone.
  if (!now || now->reqid != rec.reqid || now->started != rec.started) return false;
  proto::ResultRecord out;
  out.reqid = now->reqid;
  out.status = proto::kStatusDone;
  out.script = now->script;
  out.owner = now->owner;
  out.started = now->started;
  out.finished = finished;
  out.exit = -1;
  out.out = "";
  // In stderr too: an original dispatcher keeps only exit, stdout and stderr of a done record.
  out.err = kAsyncInterrupted;
  out.error = kAsyncInterrupted;
  WriteOptions o;
  o.mode = 0640;
  CX_TRY(write_file_atomic(rec.path, out.to_json(), o));
  return true;
}

// --- AsyncRecordRepair -------------------------------------------------------------------------

struct AsyncRecordRepair::Sweep {
  std::string runs_dir;
  std::vector<RunningRecord> found;
  size_t next = 0;                  // the next record of `found` to probe
  std::vector<RunningRecord> stale; // lock free: to be marked
  std::vector<RunningRecord> marked;
  std::vector<std::pair<std::string, std::string>> failures; // reqid, why
  std::function<void()> done;
};

AsyncRecordRepair::AsyncRecordRepair(event::Loop& loop, std::function<std::string()> runs_dir,
                                     uint64_t period_ms)
    : loop_(loop), runs_dir_(std::move(runs_dir)), period_ms_(period_ms), timer_(loop) {}

void AsyncRecordRepair::start() {
  sweep();
  timer_.start(
      period_ms_, [this] { sweep(); }, period_ms_);
  // The repair alone does not keep the agent running.
  timer_.unref();
}

void AsyncRecordRepair::sweep(std::function<void()> done) {
  if (busy_) {
    if (done) loop_.post(std::move(done));
    return;
  }
  busy_ = true;
  auto sweep = std::make_shared<Sweep>();
  sweep->runs_dir = runs_dir_();
  sweep->done = std::move(done);
  auto alive = liveness_.watch();
  event::queue_work(
      loop_, [sweep] { sweep->found = find_running_records(sweep->runs_dir); },
      [this, alive, sweep] {
        if (alive.alive()) probe_slice(sweep);
      });
}

void AsyncRecordRepair::probe_slice(std::shared_ptr<Sweep> sweep) {
  for (size_t n = 0; n < kProbesPerSlice && sweep->next < sweep->found.size(); ++n) {
    RunningRecord& r = sweep->found[sweep->next++];
    if (probe_async_lock(sweep->runs_dir, r.script) == LockProbe::free)
      sweep->stale.push_back(std::move(r));
  }
  if (sweep->next < sweep->found.size()) {
    auto alive = liveness_.watch();
    loop_.post([this, alive, sweep] {
      if (alive.alive()) probe_slice(sweep);
    });
    return;
  }
  if (sweep->stale.empty()) return finish(sweep);
  rewrite(std::move(sweep));
}

void AsyncRecordRepair::rewrite(std::shared_ptr<Sweep> sweep) {
  auto alive = liveness_.watch();
  event::queue_work(
      loop_,
      [sweep] {
        std::string finished = iso8601_utc(unix_now());
        for (const auto& r : sweep->stale) {
          auto marked = mark_interrupted(r, finished);
          if (!marked.ok())
            sweep->failures.emplace_back(r.reqid, marked.message());
          else if (*marked)
            sweep->marked.push_back(r);
        }
      },
      [this, alive, sweep] {
        if (alive.alive()) finish(sweep);
      });
}

void AsyncRecordRepair::finish(const std::shared_ptr<Sweep>& sweep) {
  for (const auto& r : sweep->marked)
    log::warning("async-interrupted",
                 {{"DISPATCHER", r.owner}, {"REQID", r.reqid}, {"SCRIPT", r.script}});
  for (const auto& [reqid, why] : sweep->failures)
    log::err("async-store-fail", {{"ERROR", why}, {"REQID", reqid}});
  busy_ = false;
  ++sweeps_;
  if (sweep->done) sweep->done();
}

} // namespace cx::agent
