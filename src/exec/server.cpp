// The executor's server; see server.hpp.
#include "exec/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <memory>

#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "event/process.hpp"
#include "exec/confine.hpp"
#include "exec/policy.hpp"
#include "log/log.hpp"
#include "proto/executor_frame.hpp"

namespace cx::exec {

namespace {

constexpr const char* kScriptPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kLoggedFieldMax = 128;

std::string bounded(const std::string& s) {
  return s.size() <= kLoggedFieldMax ? s : s.substr(0, kLoggedFieldMax) + "...";
}

class Server;

// One client connection: its request, then its run, then its answer.
struct Conn {
  Server* server;
  uint64_t id;
  uv_pipe_t* pipe = nullptr;
  std::string in;
  std::unique_ptr<event::Timer> deadline;
  std::unique_ptr<event::Process> process;
  proto::ExecRequest req;

  Conn(Server* s, uint64_t i) : server(s), id(i) {}
  ~Conn() { event::detail::close_and_delete(pipe); }
};

// The answer being written; owns its bytes until the write completes.
struct Write {
  uv_write_t req;
  std::string bytes;
  Server* server;
  uint64_t conn;
};

class Server {
public:
  Server(event::Loop& loop, const ServeOptions& opts, UserInfo peer,
         std::shared_ptr<const Policy> policy)
      : loop_(loop), opts_(opts), peer_(peer), policy_(std::move(policy)) {}

  ~Server() {
    conns_.clear();
    event::detail::close_and_delete(listener_);
  }

  Status listen();
  void reload(const char* why);
  void stop();

private:
  static void on_connection(uv_stream_t* listener, int status);
  void accept_one();
  void on_read(Conn& c, ssize_t n, const uv_buf_t* buf);
  void handle(Conn& c);
  void answer(Conn& c, proto::ExecResponse resp);
  void close(uint64_t id);
  std::shared_ptr<const Policy> current_policy();

  event::Loop& loop_;
  ServeOptions opts_;
  UserInfo peer_;
  std::shared_ptr<const Policy> policy_;
  FileStamp failed_agent_, failed_scripts_; // the stamps of a reload that failed, logged once
  uv_pipe_t* listener_ = nullptr;
  FileStamp socket_stamp_;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  uint64_t next_id_ = 1;
  bool accept_waiting_ = false; // a connection is queued until a run slot frees
};

Status Server::listen() {
  const std::string& path = opts_.socket_path;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return Status::error("socket path '" + path + "' is too long");
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // A socket left by an earlier run is replaced; anything else is the operator's file.
    if (!S_ISSOCK(st.st_mode))
      return Status::error("'" + path + "' exists and is not a socket; not replacing it");
    if (::unlink(path.c_str()) != 0)
      return Status::error("cannot remove the old socket '" + path + "': " + errno_text(errno));
  }
  listener_ = new uv_pipe_t;
  uv_pipe_init(loop_.get(), listener_, 0);
  listener_->data = this;
  // Nobody but root may connect until the socket is handed to the peer user.
  mode_t old = ::umask(0177);
  int rc = uv_pipe_bind(listener_, path.c_str());
  ::umask(old);
  if (rc != 0) return Status::error("cannot bind '" + path + "': " + event::uv_error(rc));
  if (::chown(path.c_str(), peer_.uid, peer_.gid) != 0 || ::chmod(path.c_str(), 0600) != 0)
    return Status::error("cannot hand '" + path + "' to the peer user: " + errno_text(errno));
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 16, on_connection);
  if (rc != 0) return Status::error("cannot listen on '" + path + "': " + event::uv_error(rc));
  socket_stamp_ = stamp_of(path);
  return {};
}

void Server::stop() {
  event::detail::close_and_delete(listener_);
  listener_ = nullptr;
  // Remove the socket only if it is still ours (a newer executor may have replaced it).
  FileStamp now = stamp_of(opts_.socket_path);
  if (now.size >= 0 && now.dev == socket_stamp_.dev && now.ino == socket_stamp_.ino)
    ::unlink(opts_.socket_path.c_str());
  conns_.clear(); // kills the process groups of runs still going
  loop_.stop();
}

void Server::reload(const char* why) {
  auto fresh = load_policy(opts_.agent_conf, opts_.scripts_conf);
  if (!fresh.ok()) {
    failed_agent_ = stamp_of(opts_.agent_conf);
    failed_scripts_ = stamp_of(opts_.scripts_conf);
    log::err("exec-reload-failed", {{"REASON", fresh.message()}, {"KEPT", "previous config"}});
    return;
  }
  policy_ = std::move(*fresh);
  log::info("exec-reload",
            {{"TRIGGER", why}, {"SCRIPTS", std::to_string(policy_->scripts.size())}});
}

// The files are checked on every request: an operator who edits scripts.conf and reloads the
// agent must not find the executor still deciding by the old list.
std::shared_ptr<const Policy> Server::current_policy() {
  FileStamp a = stamp_of(opts_.agent_conf), s = stamp_of(opts_.scripts_conf);
  if (!(a == policy_->agent_stamp && s == policy_->scripts_stamp) &&
      !(a == failed_agent_ && s == failed_scripts_))
    reload("changed");
  return policy_;
}

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0) {
    log::err("exec-accept-failed", {{"ERROR", event::uv_error(status)}});
    return;
  }
  if (static_cast<int64_t>(self->conns_.size()) >= self->policy_->config.max_children) {
    // Not accepted: libuv stops watching the socket until accept_one() takes it.
    self->accept_waiting_ = true;
    return;
  }
  self->accept_one();
}

void Server::accept_one() {
  auto* pipe = new uv_pipe_t;
  uv_pipe_init(loop_.get(), pipe, 0);
  if (uv_accept(reinterpret_cast<uv_stream_t*>(listener_), reinterpret_cast<uv_stream_t*>(pipe)) !=
      0) {
    event::detail::close_and_delete(pipe);
    return;
  }
  uv_os_fd_t fd = -1;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(pipe), &fd) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != peer_.uid && cred.uid != 0)) {
    log::warning("exec-peer-refused",
                 {{"UID", std::to_string(cred.uid)}, {"PID", std::to_string(cred.pid)}});
    event::detail::close_and_delete(pipe);
    return;
  }
  uint64_t id = next_id_++;
  auto conn = std::make_unique<Conn>(this, id);
  Conn& c = *conn;
  c.pipe = pipe;
  pipe->data = &c;
  conns_.emplace(id, std::move(conn));
  c.deadline = std::make_unique<event::Timer>(loop_);
  c.deadline->start(kRequestDeadlineMs, [this, id] {
    log::warning("exec-request-timeout", {{"BYTES", std::to_string(conns_.at(id)->in.size())}});
    close(id);
  });
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(pipe),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* conn = static_cast<Conn*>(s->data);
        conn->server->on_read(*conn, n, buf);
        delete[] buf->base;
      });
}

void Server::on_read(Conn& c, ssize_t n, const uv_buf_t* buf) {
  if (n == 0) return;
  if (n < 0) { // EOF or an error before a whole frame: nothing to answer
    close(c.id);
    return;
  }
  c.in.append(buf->base, static_cast<size_t>(n));
  if (c.in.size() >= 4) {
    auto byte = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(c.in[i]));
    };
    uint32_t total = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    if (total == 0 || total > proto::kMaxFrameBytes) { // as the original: no answer at all
      log::warning("exec-malformed", {{"REASON", "frame length " + std::to_string(total)}});
      close(c.id);
      return;
    }
  }
  auto d = proto::decode_request(c.in);
  if (d.status == proto::FrameStatus::need_more) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(c.pipe));
  c.deadline.reset();
  if (d.status == proto::FrameStatus::error) {
    log::warning("exec-malformed", {{"REASON", d.error}});
    answer(c, {-1, "", std::string(proto::kExecMalformed)});
    return;
  }
  c.in.clear();
  c.req = std::move(d.request);
  handle(c);
}

void Server::handle(Conn& c) {
  auto policy = current_policy();
  Decision d = decide(*policy, c.req.script);
  if (d.kind != Decision::Kind::ok) {
    std::string_view text = d.kind == Decision::Kind::not_allowlisted ? proto::kExecNotPermitted
                            : d.kind == Decision::Kind::not_in_script_dirs
                                ? proto::kExecNotInScriptDirs
                                : proto::kExecUndefinedProfile;
    std::string line = decision_line(d);
    log::warning("exec-deny", {{"SCRIPT", bounded(c.req.script)},
                               {"REASON", line.substr(5)},
                               {"DISPATCHER", bounded(c.req.dispatcher_id)},
                               {"REQID", bounded(c.req.reqid)}});
    answer(c, {-1, "", std::string(text)});
    return;
  }
  Confinement conf;
  conf.run_as = d.profile.run_as;
  conf.caps = d.profile.caps;
  conf.writable = d.profile.writable;
  conf.no_new_privileges = d.profile.no_new_privileges;
  conf.protected_dirs = protected_dirs(*policy);

  const auto& cfg = policy->config;
  event::ProcessOptions o;
  o.argv = {"/proc/self/exe", "ctrl-exec-exec", kConfineMode};
  auto rest = confine_args(conf, d.path, c.req.args);
  o.argv.insert(o.argv.end(), rest.begin(), rest.end());
  o.env = std::vector<std::string>{kScriptPath};
  o.cwd = "/";
  o.stdin_data = c.req.stdin_bytes;
  // Written whole, however late the script reads it (A§3.5: the executor path has no
  // stdin_timeout). The write waits on the loop; it never blocks other runs.
  o.stdin_timeout_ms = 0;
  o.output_limit =
      cfg.script_output_limit > 0 ? cfg.script_output_limit : proto::kExecDefaultOutputCap;
  int64_t timeout_s = cfg.script_timeout;
  o.timeout_ms = static_cast<uint64_t>(timeout_s) * 1000;

  uint64_t id = c.id;
  std::string profile = d.profile_name, run_as = d.profile.run_as.value_or("");
  c.process = event::Process::start(
      loop_, std::move(o), [this, id, profile, run_as, timeout_s](event::ProcessResult r) {
        auto it = conns_.find(id);
        if (it == conns_.end()) return;
        Conn& conn = *it->second;
        using O = event::ProcessResult::Outcome;
        proto::ExecResponse resp;
        resp.out = std::move(r.out);
        resp.err = std::move(r.err);
        if (r.out_truncated) resp.out += proto::kExecTruncatedMarker;
        if (r.err_truncated) resp.err += proto::kExecTruncatedMarker;
        switch (r.outcome) {
        case O::exited:
          resp.exit = r.exit_code;
          break;
        case O::signaled:
          resp.exit = 126;
          break;
        case O::exec_failed:
          resp.exit = 127;
          resp.err += "executor: cannot start the confinement step: " + r.error + "\n";
          break;
        case O::spawn_failed:
          resp.exit = -1;
          resp.err += "executor: cannot start the script: " + r.error + "\n";
          break;
        }
        if (r.timed_out) {
          resp.exit = 126;
          resp.err += proto::exec_timeout_line(timeout_s);
        }
        log::info("exec", {{"SCRIPT", bounded(conn.req.script)},
                           {"PROFILE", profile},
                           {"RUN_AS", run_as.empty() ? "root" : run_as},
                           {"EXIT", std::to_string(resp.exit)},
                           {"DISPATCHER", bounded(conn.req.dispatcher_id)},
                           {"REQID", bounded(conn.req.reqid)}});
        answer(conn, std::move(resp));
      });
}

void Server::answer(Conn& c, proto::ExecResponse resp) {
  auto* w = new Write{{}, proto::encode_response(resp), this, c.id};
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  int rc =
      uv_write(&w->req, reinterpret_cast<uv_stream_t*>(c.pipe), &b, 1, [](uv_write_t* req, int) {
        auto* w = static_cast<Write*>(req->data);
        w->server->close(w->conn);
        delete w;
      });
  if (rc != 0) {
    delete w;
    close(c.id);
  }
}

void Server::close(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  if (it->second->pipe) uv_read_stop(reinterpret_cast<uv_stream_t*>(it->second->pipe));
  loop_.defer_delete(std::move(it->second));
  conns_.erase(it);
  if (accept_waiting_ && listener_ &&
      static_cast<int64_t>(conns_.size()) < policy_->config.max_children) {
    accept_waiting_ = false;
    accept_one();
  }
}

} // namespace

int serve(const ServeOptions& opts) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "ctrl-exec-exec: serve must run as root\n");
    return kExitFailure;
  }
  auto peer = lookup_user(opts.peer_user);
  if (!peer) {
    std::fprintf(stderr, "ctrl-exec-exec: unknown peer user '%s' (not in /etc/passwd)\n",
                 opts.peer_user.c_str());
    return kExitConfig;
  }
  if (::access("/proc/self/exe", X_OK) != 0) {
    std::fprintf(stderr,
                 "ctrl-exec-exec: /proc/self/exe is not usable (%s); /proc must be mounted\n",
                 errno_text(errno).c_str());
    return kExitFailure;
  }
  auto policy = load_policy(opts.agent_conf, opts.scripts_conf);
  if (!policy.ok()) {
    std::fprintf(stderr, "ctrl-exec-exec: %s\n", policy.message().c_str());
    return kExitConfig;
  }
  if (auto st = probe_confinement(protected_dirs(**policy)); !st.ok()) {
    std::fprintf(stderr,
                 "ctrl-exec-exec: scripts cannot be confined on this system: %s (the executor "
                 "needs root with CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID and CAP_SETPCAP, and "
                 "mount(2) allowed by seccomp/AppArmor)\n",
                 st.message().c_str());
    return kExitConfig;
  }
  event::ignore_sigpipe();
  log::init("ctrl-exec-exec");
  event::Loop loop;
  int rc = kExitOk;
  {
    Server server(loop, opts, *peer, std::move(*policy));
    if (auto st = server.listen(); !st.ok()) {
      std::fprintf(stderr, "ctrl-exec-exec: %s\n", st.message().c_str());
      return kExitFailure;
    }
    event::SignalWatcher hup(loop), term(loop), intr(loop);
    (void)hup.start(SIGHUP, [&](int) { server.reload("SIGHUP"); });
    (void)term.start(SIGTERM, [&](int) { server.stop(); });
    (void)intr.start(SIGINT, [&](int) { server.stop(); });
    log::info("exec-start", {{"SOCKET", opts.socket_path},
                             {"PEER", opts.peer_user},
                             {"UID", std::to_string(peer->uid)}});
    loop.run();
    log::info("exec-stop");
  }
  return rc;
}

} // namespace cx::exec
