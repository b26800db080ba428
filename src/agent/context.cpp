// The handlers' shared context; see context.hpp.
#include "agent/context.hpp"

#include <cstdio>

#include "base/time.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

std::string log_safe(std::string_view s) {
  return std::string(s.substr(0, 256));
}

std::string reqid_field(const std::string& reqid) {
  return reqid.empty() ? "(none)" : log_safe(reqid);
}

namespace {
int64_t now_s() {
  return static_cast<int64_t>(monotonic_ms() / 1000);
}
} // namespace

Context::Context(event::Loop& loop, Paths paths, std::shared_ptr<const State> state,
                 Identity identity)
    : loop_(loop), paths_(std::move(paths)), state_(std::move(state)),
      identity_(std::move(identity)) {
  limiter_.reset(limiter_settings());
}

Context::~Context() {
  // Pending requests first: their scripts and hooks are killed, their clients get no answer.
  pending_.clear();
  detached_.clear(); // detached supervisors keep running; the loop reaps them
}

RateLimiter::Settings Context::limiter_settings() const {
  const auto& c = state_->config;
  return {c.rate_limit_disable, c.rate_limit_volume, c.rate_limit_probe};
}

bool Context::reload() {
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

void Context::reload_trust() {
  auto fresh = std::make_shared<State>(*state_);
  load_trust_state(*fresh, state_.get());
  state_ = std::move(fresh);
}

void Context::record_failure(const std::string& ip, RateLimiter::Failure kind) {
  if (auto reason = limiter_.record_failure(ip, kind, now_s())) metrics_.rate_blocked(*reason);
}

bool Context::blocked(const std::string& ip) {
  return limiter_.blocked(ip, now_s());
}

std::shared_ptr<void> Context::take_slot() {
  ++*live_;
  return std::shared_ptr<void>(nullptr, [live = live_](void*) { --*live; });
}

const std::string* Context::trusted_dispatcher(const Call& call, const std::string& reqid_for_log) {
  if (const std::string* id = state_->trusted.find(call.peer.key)) return id;
  log::warning(
      "serial-reject",
      {{"PEER", call.peer.ip}, {"PEER_SERIAL", call.peer.serial}, {"REQID", reqid_for_log}});
  metrics_.refused("serial-reject");
  record_failure(call.peer.ip, RateLimiter::Failure::refused);
  call.client->respond(403, proto::body::serial_mismatch());
  return nullptr;
}

void Context::authorise_pending(const std::shared_ptr<Pending>& p, hook::Request req,
                                Decided decided) {
  if (p->id == 0) {
    p->id = next_id_++;
    pending_[p->id] = p;
  }
  uint64_t id = p->id;
  // Leaving before the decision cancels the request; once it has been decided (a script may be
  // running) it goes on to its end, as the original's handler outlived the connection.
  p->client->on_close([this, id] {
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second->gate.pending()) drop(id);
  });
  const auto& cfg = state_->config;
  if (!cfg.auth_hook) {
    decided(*p, hook::Decision{true, "", 0});
    return;
  }
  hook::Policy policy{*cfg.auth_hook, static_cast<unsigned>(cfg.auth_hook_timeout), false,
                      hook::Caller::agent};
  req.source_ip = p->peer.ip;
  req.dispatcher = p->dispatcher;
  req.dispatcher_serial = p->peer.serial;
  // The gate belongs to `p`: while it can deliver, `p` is alive (tracked, or dropped and
  // awaiting deletion with its gate cancelled).
  p->gate.ask(
      policy, std::move(req),
      [q = p.get(), decided = std::move(decided)](const hook::Decision& d) { decided(*q, d); });
}

void Context::drop(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  it->second->gate.cancel();
  loop_.defer_delete(std::move(it->second));
  pending_.erase(it);
  if (on_drop_) on_drop_();
}

int Context::start_detached(event::ProcessOptions options) {
  options.detached = true;
  auto pid = std::make_shared<int>(0);
  auto proc = event::Process::start(loop_, std::move(options), [this, pid](event::ProcessResult) {
    // It has exited and been reaped.
    auto it = detached_.find(*pid);
    if (it == detached_.end()) return;
    loop_.defer_delete(std::move(it->second));
    detached_.erase(it);
  });
  if (proc->pid() <= 0) return 0;
  *pid = proc->pid();
  detached_[*pid] = std::move(proc);
  return *pid;
}

} // namespace cx::agent
