// The agent's 7443 server; see server.hpp.
#include "agent/server.hpp"

#include <signal.h>

#include <cstdio>

#include "agent/async_job.hpp"
#include "agent/executor_client.hpp"
#include "agent/runner.hpp"
#include "base/files.hpp"
#include "base/hostname.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "base/version.hpp"
#include "hook/hook.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "proto/agent_wire.hpp"

extern char** environ;

namespace cx::agent {

namespace {

int64_t now_s() {
  return static_cast<int64_t>(monotonic_ms() / 1000);
}

// Values from the request (script names, reqids) go into log lines as the original writes
// them, except that control characters, which could forge a second syslog line, become '?',
// and the length is bounded.
std::string log_safe(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 256))
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
  return out;
}

std::string reqid_field(const std::string& reqid) {
  return reqid.empty() ? "(none)" : log_safe(reqid);
}

// A counted slot: the request stays "live" (max_children, draining) while any holder keeps it.
std::shared_ptr<void> make_slot(const std::shared_ptr<size_t>& live) {
  ++*live;
  return std::shared_ptr<void>(nullptr, [live](void*) { --*live; });
}

} // namespace

struct AgentServer::PeerInfo {
  std::string ip;
  std::string serial; // lower-case hex as the certificate has it (ENVEXEC_DISPATCHER_SERIAL)
  std::string key;    // canon(serial), computed once (A§4.2.1)
  std::shared_ptr<void> slot;
};

struct AgentServer::Job {
  uint64_t id = 0;
  std::weak_ptr<http::Connection> conn;
  std::shared_ptr<void> slot;
  std::shared_ptr<const State> state;
  PeerInfo peer;
  std::string dispatcher;
  proto::RunRequest req;
  std::string path;
  std::string timestamp;
  std::unique_ptr<hook::Check> check;
  std::unique_ptr<event::Process> process;
  std::unique_ptr<ExecutorCall> exec;
  bool running = false; // a script has started: it runs to its end even if the client leaves
};

AgentServer::AgentServer(event::Loop& loop, Paths paths, std::shared_ptr<State> state,
                         std::shared_ptr<tls::Config> tls, Identity identity,
                         ServerSettings settings)
    : loop_(loop), paths_(std::move(paths)), state_(std::move(state)),
      identity_(std::move(identity)), reaper_(loop), idle_poll_(loop) {
  limiter_.reset(limiter_settings());
  http::ServerOptions o;
  o.bind_ip = settings.bind_ip;
  o.port = settings.port;
  o.tls = std::move(tls);
  o.handshake_timeout_ms = settings.handshake_timeout_ms;
  o.request_timeout_ms = settings.request_timeout_ms;
  o.allow_keep_alive = false; // one request per connection, as the original
  http::ServerHooks h;
  h.admit = [this](const event::SockAddr& peer) { return admit(peer); };
  h.handshake_failed = [this](const event::SockAddr& peer, const std::string& reason) {
    handshake_failed(peer, reason);
  };
  h.ready = [this](const std::shared_ptr<http::Connection>& c) { return ready(c); };
  h.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    on_request(c, r);
  };
  h.bad_request = [this](const std::shared_ptr<http::Connection>& c, const http::RequestParser& p) {
    on_bad_request(c, p);
  };
  // A closed connection no longer counts as a live request (a run it started still does,
  // through the job's own slot).
  h.closed = [](http::Connection& c) {
    if (auto* peer = static_cast<PeerInfo*>(c.user.get())) peer->slot.reset();
  };
  http_ = std::make_unique<http::Server>(loop, std::move(o), std::move(h));
}

AgentServer::~AgentServer() {
  http_.reset(); // connections first: nothing may call back into a half-destroyed server
  jobs_.clear();
  graveyard_.clear();
}

Status AgentServer::listen() {
  return http_->listen();
}

RateLimiter::Settings AgentServer::limiter_settings() const {
  const auto& c = state_->config;
  return {c.rate_limit_disable, c.rate_limit_volume, c.rate_limit_probe};
}

bool AgentServer::reload() {
  auto fresh = load_state(paths_, state_.get());
  if (!fresh.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: reload failed, keeping the previous configuration: %s\n",
                 fresh.message().c_str());
    log::err("reload", {{"STATUS", "failed"}, {"ERROR", fresh.message()}});
    return false;
  }
  const auto& was = state_->config;
  const auto& now = (*fresh)->config;
  if (was.port != now.port || was.cert != now.cert || was.key != now.key || was.ca != now.ca)
    std::fprintf(stderr, "ctrl-exec-agent: port and TLS files are read at start only; restart "
                         "the agent to use the new values\n");
  state_ = std::move(*fresh);
  std::string warn = unenforced_profiles_warning(*state_);
  if (!warn.empty()) std::fprintf(stderr, "%s\n", warn.c_str());
  limiter_.reset(limiter_settings());
  log::info("reload", {{"STATUS", "ok"},
                       {"SCRIPTS", std::to_string(state_->scripts.size())},
                       {"DISPATCHERS", std::to_string(state_->trusted.size())}});
  return true;
}

void AgentServer::drain(std::function<void()> on_idle) {
  draining_ = true;
  on_idle_ = std::move(on_idle);
  http_->stop_accepting();
  // Slots are released as connections wind down; poll rather than track every release.
  idle_poll_.start(
      0, [this] { check_idle(); }, 50);
}

void AgentServer::check_idle() {
  if (!draining_ || !on_idle_) return;
  if (*live_ == 0 && jobs_.empty()) {
    idle_poll_.stop();
    auto fn = std::move(on_idle_);
    on_idle_ = nullptr;
    fn();
  }
}

// --- The connection pipeline -------------------------------------------------------------------

bool AgentServer::admit(const event::SockAddr& peer) {
  std::string ip = peer.ip();
  const State& st = *state_;
  if (!st.allowed_ips.unrestricted() && !st.allowed_ips.allows(ip)) {
    log::warning("ip-block", {{"PEER", ip}});
    return false;
  }
  // Connections still in their handshake are bounded too, so a flood of slow handshakes
  // cannot exhaust memory; established requests are capped by max_children in ready().
  size_t cap = static_cast<size_t>(st.config.max_children) * 4 + 64;
  if (http_->open_connections() >= cap) {
    log::warning("overload", {{"PEER", ip}, {"LIVE", std::to_string(http_->open_connections())}});
    return false;
  }
  return true;
}

void AgentServer::handshake_failed(const event::SockAddr& peer, const std::string& reason) {
  std::string ip = peer.ip();
  log::warning("tls-failure", {{"PEER", ip}, {"REASON", reason}});
  limiter_.record_failure(ip, RateLimiter::Failure::handshake, now_s());
}

void AgentServer::record_refusal(const std::string& ip) {
  limiter_.record_failure(ip, RateLimiter::Failure::refused, now_s());
}

bool AgentServer::ready(const std::shared_ptr<http::Connection>& conn) {
  auto peer = std::make_shared<PeerInfo>();
  peer->ip = conn->peer_ip();
  peer->serial = conn->peer_serial();
  peer->key = peer_key(peer->serial);
  const State& st = *state_;
  bool revoked = !peer->serial.empty() && st.revoked.contains(peer->key);
  bool trusted = !revoked && st.trusted.find(peer->key) != nullptr;

  // A blocked IP gets no response, unless the certificate it shows is a trusted
  // dispatcher's: those are never throttled (docs/COMPATIBILITY.md).
  if (!trusted && limiter_.blocked(peer->ip, now_s())) {
    conn->abort();
    return false;
  }
  if (*live_ >= static_cast<size_t>(st.config.max_children)) {
    log::warning("overload", {{"PEER", peer->ip}, {"LIVE", std::to_string(*live_)}});
    conn->abort();
    return false;
  }
  if (revoked) {
    log::warning("revoked-cert", {{"PEER", peer->ip}, {"SERIAL", peer->serial}});
    record_refusal(peer->ip);
    conn->respond(403, proto::body::revoked());
    return false;
  }
  peer->slot = make_slot(live_);
  conn->user = peer;
  return true;
}

void AgentServer::on_bad_request(const std::shared_ptr<http::Connection>& conn,
                                 const http::RequestParser& parser) {
  switch (parser.error()) {
  case http::ParseError::empty:
    conn->respond(400, proto::body::empty_request());
    return;
  case http::ParseError::too_many_headers:
  case http::ParseError::headers_too_large:
    conn->respond(431, proto::body::too_many_headers());
    return;
  case http::ParseError::body_too_large:
    conn->respond(413, proto::body::request_too_large());
    return;
  default:
    conn->respond(400, proto::body::bad_request());
    return;
  }
}

void AgentServer::on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req) {
  auto peer = std::static_pointer_cast<PeerInfo>(conn->user);
  if (!peer) {
    conn->abort();
    return;
  }
  const std::string& m = req.method;
  const std::string& p = req.path;
  static constexpr std::string_view kResult = "/result/";
  if (m == "POST" && p == "/run") return handle_run(conn, *peer, req);
  if (m == "POST" && p == "/ping") return handle_ping(conn, *peer, req);
  if (m == "GET" && p == "/capabilities") return handle_capabilities(conn, *peer);
  if (m == "GET" && p.size() > kResult.size() && p.compare(0, kResult.size(), kResult) == 0 &&
      is_reqid(std::string_view(p).substr(kResult.size())))
    return handle_result(conn, *peer, p.substr(kResult.size()));
  if (m == "POST" && p == "/rotate-serial") return handle_rotate(conn, *peer, req);
  if (m == "POST" && p == "/renew") return handle_renew(conn, *peer, req);
  if (m == "POST" && p == "/renew-complete") return handle_renew_complete(conn, *peer, req);
  conn->respond(404, proto::body::not_found());
}

const std::string* AgentServer::gate(const std::shared_ptr<http::Connection>& conn,
                                     const PeerInfo& peer, const std::string& reqid_for_log) {
  if (const std::string* id = state_->trusted.find(peer.key)) return id;
  log::warning("serial-reject",
               {{"PEER", peer.ip}, {"PEER_SERIAL", peer.serial}, {"REQID", reqid_for_log}});
  record_refusal(peer.ip);
  conn->respond(403, proto::body::serial_mismatch());
  return nullptr;
}

// --- /ping ---------------------------------------------------------------------------------

void AgentServer::handle_ping(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                              const http::Request& req) {
  const std::string* disp = gate(conn, peer, "(none)");
  if (!disp) return;
  proto::PingReply r;
  r.host = identity_.host;
  r.version = identity_.version;
  r.expiry = identity_.expiry;
  r.staged = path_exists(state_->config.cert_staging_path);
  r.reqid = proto::PingRequest::parse(req.body).reqid;
  log::info("ping", {{"PEER", peer.ip}, {"DISPATCHER", *disp}, {"REQID", reqid_field(r.reqid)}});
  conn->respond(200, r.to_json());
}

// --- /capabilities -------------------------------------------------------------------------

void AgentServer::handle_capabilities(const std::shared_ptr<http::Connection>& conn,
                                      const PeerInfo& peer) {
  auto st = state_;
  const std::string* disp = st->trusted.find(peer.key);
  if (!disp) {
    log::warning(
        "capabilities-deny",
        {{"PEER", peer.ip},
         {"PEER_SERIAL", peer.serial},
         {"REASON", st->trusted.empty() ? "no trusted dispatchers stored" : "serial-mismatch"}});
    record_refusal(peer.ip);
    conn->respond(403, proto::body::forbidden());
    return;
  }
  std::string dispatcher = *disp;
  auto reply = [this, st, dispatcher, ip = peer.ip](const std::shared_ptr<http::Connection>& c) {
    proto::CapabilitiesReply r;
    r.host = identity_.host;
    r.version = identity_.version;
    r.tags = st->config.tags;
    for (const auto& [name, entry] : st->scripts) {
      proto::ScriptInfo s;
      s.name = name;
      s.path = entry.path;
      s.executable = is_executable_file(entry.path);
      s.profile = entry.profile;
      if (auto it = st->sidecars.by_script.find(name); it != st->sidecars.by_script.end()) {
        s.schema_json = it->second.schema_json;
        s.schema_version = it->second.schema_version;
      }
      r.scripts.push_back(std::move(s));
    }
    log::info(
        "capabilities",
        {{"PEER", ip}, {"DISPATCHER", dispatcher}, {"SCRIPTS", std::to_string(r.scripts.size())}});
    c->respond(200, r.to_json());
  };
  if (!st->config.auth_hook) {
    reply(conn);
    return;
  }
  auto job = std::make_shared<Job>();
  job->id = next_job_++;
  job->conn = conn;
  job->slot = peer.slot;
  hook::Policy pol{*st->config.auth_hook, static_cast<unsigned>(st->config.auth_hook_timeout),
                   false, hook::Caller::agent};
  hook::Request hr;
  hr.action = "discovery";
  hr.source_ip = peer.ip;
  hr.dispatcher = dispatcher;
  hr.dispatcher_serial = peer.serial;
  uint64_t id = job->id;
  jobs_[id] = job;
  conn->on_close([this, id] { drop_job(id); });
  job->check = hook::Check::start(
      loop_, pol, std::move(hr), [this, id, reply, dispatcher, ip = peer.ip](hook::Decision d) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        auto conn = it->second->conn.lock();
        if (conn) {
          if (d.allowed) {
            reply(conn);
          } else {
            log::warning("capabilities-deny",
                         {{"PEER", ip}, {"DISPATCHER", dispatcher}, {"REASON", d.reason}});
            conn->respond(403, proto::body::not_authorised());
          }
        }
        drop_job(id);
      });
}

// --- /result ---------------------------------------------------------------------------------

void AgentServer::handle_result(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                                const std::string& reqid) {
  const std::string* disp = gate(conn, peer, reqid);
  if (!disp) return;
  auto found = find_async_record(state_->config.async_runs_dir, *disp, reqid);
  log::Fields f{{"PEER", peer.ip}, {"DISPATCHER", *disp}, {"REQID", reqid}};
  switch (found.kind) {
  case RecordLookup::Kind::found:
    f.push_back({"STATUS", log_safe(found.status)});
    log::info("result", f);
    conn->respond(200, found.json);
    return;
  case RecordLookup::Kind::not_owner:
    f.push_back({"REASON", "not-owner"});
    log::warning("result-deny", f);
    break;
  case RecordLookup::Kind::missing:
    log::info("result-miss", f);
    break;
  }
  conn->respond(404, proto::result_unknown_json(reqid));
}

// --- /rotate-serial --------------------------------------------------------------------------

void AgentServer::handle_rotate(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                                const http::Request& req) {
  const std::string* disp = gate(conn, peer, "(none)");
  if (!disp) return;
  std::string caller = *disp;
  auto rq = proto::RotateRequest::parse(req.body);
  auto fail = [](const std::string& e) {
    proto::RotateReply r;
    r.status = "error";
    r.error = e;
    return r.to_json();
  };
  if (rq.serial.empty()) {
    conn->respond(200, fail("serial required"));
    return;
  }
  if (rq.action != "add" && rq.action != "remove") {
    conn->respond(200, fail("invalid action '" + rq.action + "'"));
    return;
  }
  auto apply = [this, caller, rq, fail, ip = peer.ip](const std::shared_ptr<http::Connection>& c) {
    std::string key = wire_serial_key(rq.serial);
    Status st;
    if (key.empty()) {
      st = error("unusable serial '" + rq.serial + "'");
    } else {
      st = edit_trusted_map(state_->config.trusted_dispatchers_path, [&](TrustedMap& m) {
        return rq.action == "add" ? m.add(key, caller, true) : m.remove(key, caller);
      });
    }
    if (!st.ok()) {
      log::err("rotate-fail", {{"DISPATCHER", caller}, {"ERROR", st.message()}});
      c->respond(200, fail(st.message()));
      return;
    }
    // The original SIGHUPs its parent here, which re-reads the map whatever state agent.conf
    // is in; we reload in place, and if agent.conf or the allowlist cannot be loaded just now,
    // still adopt the map we have just written (the dispatcher is told "ok").
    if (!reload()) {
      auto fresh = std::make_shared<State>(*state_);
      load_trust_state(*fresh, state_.get());
      state_ = std::move(fresh);
    }
    log::info("rotate", {{"DISPATCHER", caller},
                         {"SERIAL_ACTION", rq.action},
                         {"SERIAL", log_safe(rq.serial)},
                         {"PEER", ip}});
    proto::RotateReply r;
    r.status = "ok";
    r.action = rq.action;
    r.serial = rq.serial;
    r.dispatcher = caller;
    c->respond(200, r.to_json());
  };
  const auto& cfg = state_->config;
  if (!cfg.auth_hook) {
    apply(conn);
    return;
  }
  auto job = std::make_shared<Job>();
  job->id = next_job_++;
  job->conn = conn;
  job->slot = peer.slot;
  hook::Policy pol{*cfg.auth_hook, static_cast<unsigned>(cfg.auth_hook_timeout), false,
                   hook::Caller::agent};
  hook::Request hr;
  hr.action = "rotate";
  hr.args = {rq.action, rq.serial};
  hr.token = rq.token;
  hr.source_ip = peer.ip;
  hr.dispatcher = caller;
  hr.dispatcher_serial = peer.serial;
  uint64_t id = job->id;
  jobs_[id] = job;
  conn->on_close([this, id] { drop_job(id); });
  job->check =
      hook::Check::start(loop_, pol, std::move(hr), [this, id, apply, caller](hook::Decision d) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        if (auto c = it->second->conn.lock()) {
          if (d.allowed) {
            apply(c);
          } else {
            log::warning("rotate-deny", {{"DISPATCHER", caller}, {"REASON", d.reason}});
            c->respond(403, proto::body::not_authorised(d.reason));
          }
        }
        drop_job(id);
      });
}

// --- /renew, /renew-complete ------------------------------------------------------------------

void AgentServer::handle_renew(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                               const http::Request& req) {
  std::string reqid = proto::RenewRequest::parse(req.body).reqid;
  proto::RenewReply r;
  auto key = read_file(state_->config.key, 1u << 20);
  if (!key.ok()) {
    r.status = "error";
    r.error = "agent key not available";
    log::err("renew", {{"PEER", peer.ip}, {"REQID", reqid_field(reqid)}, {"ERROR", *r.error}});
    conn->respond(200, r.to_json());
    return;
  }
  auto csr = pki::create_csr(*key, identity_.host);
  if (!csr.ok()) {
    r.status = "error";
    r.error = "could not generate CSR";
    log::err("renew", {{"PEER", peer.ip}, {"REQID", reqid_field(reqid)}, {"ERROR", csr.message()}});
    conn->respond(200, r.to_json());
    return;
  }
  r.status = "ok";
  r.csr = std::move(*csr);
  r.reqid = reqid;
  log::info("renew",
            {{"PEER", peer.ip}, {"REQID", reqid_field(reqid)}, {"STATUS", "csr-generated"}});
  conn->respond(200, r.to_json());
}

void AgentServer::handle_renew_complete(const std::shared_ptr<http::Connection>& conn,
                                        const PeerInfo& peer, const http::Request& req) {
  auto rq = proto::RenewCompleteRequest::parse(req.body);
  const auto& cfg = state_->config;
  auto fail = [&](const std::string& why) {
    log::err("renew-complete",
             {{"PEER", peer.ip}, {"REQID", reqid_field(rq.reqid)}, {"ERROR", why}});
    proto::RenewCompleteReply r;
    r.status = "error";
    r.error = why;
    conn->respond(200, r.to_json());
  };
  if (rq.cert.empty()) return fail("cert required");
  auto ca = read_file(cfg.ca, 1u << 20);
  if (!ca.ok()) return fail("CA cert not found at '" + cfg.ca + "'");
  auto key = read_file(cfg.key, 1u << 20);
  if (!key.ok()) return fail("agent key not found at '" + cfg.key + "'");
  if (!pki::verify_cert(rq.cert, *ca).ok())
    return fail("renewed cert does not verify against the agent CA");
  auto matches = pki::key_matches_cert(*key, rq.cert);
  if (!matches.ok() || !*matches)
    return fail("renewed cert public key does not match the agent key");
  WriteOptions o;
  o.mode = 0640;
  Status st = write_file_atomic(cfg.cert_staging_path, rq.cert, o);
  if (!st.ok()) return fail("could not stage cert: " + st.message());
  log::info("renew-complete",
            {{"PEER", peer.ip}, {"REQID", reqid_field(rq.reqid)}, {"STATUS", "cert-staged"}});
  proto::RenewCompleteReply r;
  r.status = "ok";
  r.reqid = rq.reqid;
  r.staged = true;
  conn->respond(200, r.to_json());
}

// --- /run ------------------------------------------------------------------------------------

void AgentServer::handle_run(const std::shared_ptr<http::Connection>& conn, const PeerInfo& peer,
                             const http::Request& req) {
  const std::string* disp = gate(conn, peer, "(none)");
  if (!disp) return;
  auto st = state_;
  auto parsed = proto::parse_run_request(req.body);
  proto::RunResult refusal;
  if (parsed.error == proto::RunRequestError::invalid_json) {
    refusal.error = std::string(proto::run_request_error_text(parsed.error));
    conn->respond(200, refusal.to_json());
    return;
  }
  proto::RunRequest& rq = parsed.request;
  if (parsed.error != proto::RunRequestError::none) {
    refusal.error = std::string(proto::run_request_error_text(parsed.error));
    refusal.reqid = rq.reqid;
    conn->respond(200, refusal.to_json());
    return;
  }
  refusal.script = rq.script;
  refusal.reqid = rq.reqid;

  // The name rule, the allowlist, and script_dirs again at execution time (the file system
  // may have changed since the allowlist was loaded).
  auto entry = st->scripts.find(rq.script);
  if (!is_script_name(rq.script) || entry == st->scripts.end() ||
      !conf::in_script_dirs(entry->second.path, st->config.script_dirs)) {
    log::warning(
        "deny",
        {{"SCRIPT", log_safe(rq.script)}, {"PEER", peer.ip}, {"REQID", reqid_field(rq.reqid)}});
    refusal.error = "script not permitted";
    conn->respond(200, refusal.to_json());
    return;
  }

  auto job = std::make_shared<Job>();
  job->id = next_job_++;
  job->conn = conn;
  job->slot = peer.slot;
  job->state = st;
  job->peer = peer;
  job->peer.slot = nullptr;
  job->dispatcher = *disp;
  job->path = entry->second.path;
  job->timestamp = iso8601_utc(unix_now());
  job->req = std::move(rq);
  uint64_t id = job->id;
  jobs_[id] = job;
  // A client that leaves before its script starts cancels the request; a started script runs
  // to its end (as in the original, whose handler outlived the connection) and is logged.
  conn->on_close([this, id] {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && !it->second->running) drop_job(id);
  });

  if (!st->config.auth_hook) {
    run_authorised(job);
    return;
  }
  hook::Policy pol{*st->config.auth_hook, static_cast<unsigned>(st->config.auth_hook_timeout),
                   false, hook::Caller::agent};
  hook::Request hr;
  hr.action = "run";
  hr.script = job->req.script;
  hr.args = job->req.args;
  hr.username = job->req.username;
  hr.token = job->req.token;
  hr.source_ip = peer.ip;
  hr.dispatcher = job->dispatcher;
  hr.dispatcher_serial = peer.serial;
  job->check = hook::Check::start(loop_, pol, std::move(hr), [this, id](hook::Decision d) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    auto job = it->second;
    job->check.reset();
    if (d.allowed) {
      run_authorised(job);
      return;
    }
    log::warning("deny", {{"REASON", d.reason},
                          {"SCRIPT", job->req.script},
                          {"PEER", job->peer.ip},
                          {"DISPATCHER", job->dispatcher},
                          {"REQID", reqid_field(job->req.reqid)}});
    if (auto conn = job->conn.lock()) {
      proto::RunResult r;
      r.script = job->req.script;
      r.reqid = job->req.reqid;
      r.error = "not authorised: " + d.reason;
      conn->respond(200, r.to_json());
    }
    drop_job(id);
  });
}

void AgentServer::run_authorised(std::shared_ptr<Job> job) {
  const auto& cfg = job->state->config;
  if (job->req.async) {
    run_async(job);
    return;
  }
  ScriptContext ctx{job->req.script,   job->req.args,  job->req.reqid,  job->peer.ip,
                    job->req.username, job->req.token, job->dispatcher, job->timestamp};
  std::string context = context_json(ctx);
  uint64_t id = job->id;
  job->running = true;
  if (cfg.executor_socket) {
    ExecRequest er{job->req.reqid, job->dispatcher, job->req.script, context, job->req.args};
    job->exec = ExecutorCall::start(loop_, *cfg.executor_socket, er, [this, id](ExecResponse r) {
      auto it = jobs_.find(id);
      if (it == jobs_.end()) return;
      finish_run(it->second, r.exit, std::move(r.out), std::move(r.err), false, false,
                 std::nullopt);
    });
    return;
  }
  RunSpec spec;
  spec.path = job->path;
  spec.args = job->req.args;
  spec.stdin_data = std::move(context);
  spec.stdin_timeout_ms = static_cast<uint64_t>(cfg.stdin_timeout) * 1000;
  spec.on_stdin_timeout = log_stdin_timeout;
  spec.timeout_ms = static_cast<uint64_t>(cfg.script_timeout) * 1000;
  spec.output_limit = static_cast<size_t>(cfg.script_output_limit);
  job->process = start_script(loop_, spec, [this, id](RunOutcome o) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    auto job = it->second;
    if (o.timed_out)
      log::warning("script-timeout",
                   {{"SCRIPT", job->req.script},
                    {"TIMEOUT", std::to_string(job->state->config.script_timeout)},
                    {"REQID", reqid_field(job->req.reqid)}});
    std::optional<std::string> error = o.timed_out ? o.error : std::nullopt;
    finish_run(job, o.exit, std::move(o.out), std::move(o.err), o.truncated, o.timed_out,
               std::move(error));
  });
}

void AgentServer::finish_run(const std::shared_ptr<Job>& job, int exit, std::string out,
                             std::string err, bool truncated, bool timed_out,
                             std::optional<std::string> error) {
  log::info("run", {{"SCRIPT", job->req.script},
                    {"EXIT", std::to_string(exit)},
                    {"PEER", job->peer.ip},
                    {"DISPATCHER", job->dispatcher},
                    {"REQID", reqid_field(job->req.reqid)}});
  if (auto conn = job->conn.lock()) {
    proto::RunResult r;
    r.script = job->req.script;
    r.exit = exit;
    r.out = std::move(out);
    r.err = std::move(err);
    r.reqid = job->req.reqid;
    r.error = std::move(error);
    r.truncated = truncated;
    r.timed_out = timed_out;
    conn->respond(200, r.to_json());
  }
  drop_job(job->id);
}

void AgentServer::run_async(std::shared_ptr<Job> job) {
  const auto& cfg = job->state->config;
  auto conn = job->conn.lock();
  auto refuse = [&](std::string_view why) {
    proto::RunResult r;
    r.script = job->req.script;
    r.reqid = job->req.reqid;
    r.error = std::string(why);
    if (conn) conn->respond(200, r.to_json());
    drop_job(job->id);
  };
  if (cfg.executor_socket) return refuse(proto::kAsyncExecutorRefusal);
  if (!is_reqid(job->req.reqid)) return refuse(proto::kAsyncNeedsReqid);
  if (!is_owner_id(job->dispatcher)) return refuse(proto::kAsyncStartFailed);

  const std::string& runs = cfg.async_runs_dir;
  purge_async_records(runs, unix_now());
  auto store_fail = [&](const std::string& why) {
    log::err("async-store-fail", {{"REQID", job->req.reqid}, {"ERROR", why}});
    refuse(proto::kAsyncStartFailed);
  };
  if (Status st = make_dirs(runs + "/.locks", 0750); !st.ok()) return store_fail(st.message());
  FileLock lock;
  if (Status st = lock.lock(async_lock_path(runs, job->req.script), false, 0640); !st.ok()) {
    if (!lock.busy()) return store_fail(st.message());
    log::warning("run-async-busy",
                 {{"SCRIPT", job->req.script}, {"PEER", job->peer.ip}, {"REQID", job->req.reqid}});
    proto::AsyncReply r{job->req.script, "busy", job->req.reqid, std::string(proto::kAsyncBusy)};
    if (conn) conn->respond(409, r.to_json());
    drop_job(job->id);
    return;
  }

  proto::ResultRecord rec;
  rec.reqid = job->req.reqid;
  rec.status = "running";
  rec.script = job->req.script;
  rec.owner = job->dispatcher;
  rec.started = job->timestamp;
  if (Status st = write_async_record(runs, rec); !st.ok()) return store_fail(st.message());

  AsyncJob aj;
  aj.runs_dir = runs;
  aj.script = job->req.script;
  aj.path = job->path;
  aj.args = job->req.args;
  aj.context = context_json({job->req.script, job->req.args, job->req.reqid, job->peer.ip,
                             job->req.username, job->req.token, job->dispatcher, job->timestamp});
  aj.reqid = job->req.reqid;
  aj.owner = job->dispatcher;
  aj.started = job->timestamp;
  aj.stdin_timeout_ms = static_cast<uint64_t>(cfg.stdin_timeout) * 1000;
  aj.timeout_ms = static_cast<uint64_t>(cfg.script_timeout) * 1000;
  aj.output_limit = cfg.script_output_limit;

  event::ProcessOptions po;
  po.argv = supervisor_argv(aj);
  po.stdin_data = aj.to_json();
  po.capture_output = false;
  po.detached = true;
  po.inherit_fds = {lock.fd()};
  std::shared_ptr<int> pid_slot = std::make_shared<int>(0);
  auto proc = event::Process::start(loop_, std::move(po), [this, pid_slot](event::ProcessResult) {
    // The supervisor has exited and been reaped.
    auto it = supervisors_.find(*pid_slot);
    if (it == supervisors_.end()) return;
    bury(std::shared_ptr<event::Process>(std::move(it->second)));
    supervisors_.erase(it);
  });
  if (proc->pid() <= 0) {
    (void)remove_file(async_record_path(runs, rec.owner, rec.reqid));
    return store_fail("cannot start the job supervisor");
  }
  *pid_slot = proc->pid();
  supervisors_[proc->pid()] = std::move(proc);
  // The supervisor holds the lock through its copy of the descriptor; ours can go.
  lock.close_keep_lock();
  log::info("run-async", {{"SCRIPT", job->req.script},
                          {"PEER", job->peer.ip},
                          {"DISPATCHER", job->dispatcher},
                          {"REQID", job->req.reqid}});
  proto::AsyncReply r{job->req.script, "accepted", job->req.reqid, std::nullopt};
  if (conn) conn->respond(202, r.to_json());
  drop_job(job->id);
}

void AgentServer::drop_job(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  bury(std::move(it->second));
  jobs_.erase(it);
  check_idle();
}

void AgentServer::bury(std::shared_ptr<void> thing) {
  // Destroyed on the next loop iteration, never inside one of its own callbacks.
  graveyard_.push_back(std::move(thing));
  if (!reaper_.active()) reaper_.start(0, [this] { graveyard_.clear(); });
}

// --- serve -----------------------------------------------------------------------------------

namespace {

void print_config_error(const Paths& paths, const std::string& err) {
  std::fprintf(stderr,
               "ctrl-exec-agent: cannot start - configuration error.\n"
               "  %s\n"
               "  Config:    %s\n"
               "  Allowlist: %s\n"
               "  Note: comments must be on their own line; a '#' after a value is part of "
               "the value.\n",
               err.c_str(), paths.config.c_str(), paths.allowlist.c_str());
}

void print_unpaired(const std::string& missing) {
  std::fprintf(stderr,
               "ctrl-exec-agent: this agent has not been paired yet (missing %s).\n"
               "Pair it with a dispatcher first:\n"
               "  sudo ctrl-exec-agent request-pairing --dispatcher <dispatcher-host>\n"
               "Then check with:\n"
               "  ctrl-exec-agent pairing-status\n",
               missing.c_str());
}

} // namespace

int serve(const Paths& paths) {
  event::ignore_sigpipe();
  auto loaded = load_config_state(paths);
  if (!loaded.ok()) {
    print_config_error(paths, loaded.message());
    return 78;
  }
  std::shared_ptr<State> state = std::move(*loaded);
  std::string warn = unenforced_profiles_warning(*state);
  if (!warn.empty()) std::fprintf(stderr, "%s\n", warn.c_str());
  load_trust_state(*state, nullptr);

  const auto& cfg = state->config;
  std::string missing = first_missing_tls_file(cfg);
  if (!missing.empty()) {
    print_unpaired(missing);
    return 78;
  }
  auto creds = tls::Credentials::load(cfg.cert, cfg.key, cfg.ca);
  if (!creds.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot use the TLS files: %s\n",
                 creds.message().c_str());
    return 1;
  }
  auto tls_conf = tls::Config::server(*creds, tls::PeerCheck::required);
  if (!tls_conf.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot set up TLS: %s\n", tls_conf.message().c_str());
    return 1;
  }
  Identity id;
  id.host = host_fqdn();
  id.version = std::string(version());
  id.expiry = "unknown";
  if (auto pem = read_file(cfg.cert, 1u << 20); pem.ok())
    if (auto info = pki::cert_info(*pem); info.ok()) id.expiry = openssl_time(info->not_after);

  event::Loop loop;
  ServerSettings settings;
  settings.port = cfg.port;
  AgentServer server(loop, paths, state, *tls_conf, id, settings);
  if (Status st = server.listen(); !st.ok()) {
    std::fprintf(stderr, "ctrl-exec-agent: cannot listen on port %d: %s\n", cfg.port,
                 st.message().c_str());
    return 1;
  }
  event::SignalWatcher hup(loop), term(loop), intr(loop);
  (void)hup.start(SIGHUP, [&](int) { server.reload(); });
  bool stopping = false;
  auto stop = [&](int) {
    if (stopping) {
      loop.stop(); // a second signal: stop at once
      return;
    }
    stopping = true;
    server.drain([&] { loop.stop(); });
  };
  (void)term.start(SIGTERM, stop);
  (void)intr.start(SIGINT, stop);
  log::info("start", {{"PORT", std::to_string(server.port())}});
  loop.run();
  return 0;
}

} // namespace cx::agent
