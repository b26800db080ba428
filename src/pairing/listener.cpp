// The pairing listener; see listener.hpp.
#include "pairing/listener.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <set>

#include "base/files.hpp"
#include "base/time.hpp"
#include "http/writer.hpp"
#include "log/log.hpp"
#include "pairing/prompt.hpp"
#include "pairing/reverse_dns.hpp"
#include "pki/csr.hpp"
#include "proto/pairing_wire.hpp"
#include "tls/tls.hpp"

namespace cx::pairing {

// Sent to an agent still waiting when pairing mode stops: its request is withdrawn, so it
// must not wait for an answer that can no longer come (docs/COMPATIBILITY.md).
constexpr std::string_view kPairStopped = "pairing mode stopped";
// How long open connections may take to flush their last response once pairing mode stops.
constexpr uint64_t kDrainMs = 2000;

// What enqueue() needs from a validated request once reverse DNS has answered.
struct QueuedInput {
  proto::PairRequest req;
  std::string source_ip;
  ReverseDns rdns;
};

Listener::Listener(event::Loop& loop, ListenerOptions opts)
    : loop_(loop), opts_(std::move(opts)), queue_(opts_.queue_dir), limiter_(opts_.rate),
      poll_timer_(loop), deadline_timer_(loop), periodic_timer_(loop), drain_timer_(loop),
      stdin_(loop) {}

Listener::~Listener() {
  stdin_.stop();
}

void Listener::answer(const std::shared_ptr<http::Connection>& conn, std::string_view body) {
  // Every response of the exchange is HTTP/1.0 200, errors included (§8).
  answered_.insert(conn->id());
  conn->respond(200, body, false);
}

void Listener::print(const std::string& s) {
  if (opts_.output) {
    opts_.output(s);
    return;
  }
  std::fputs(s.c_str(), stdout);
  std::fflush(stdout);
}

Status Listener::start() {
  auto fail = [](const std::string& why) { return error("Cannot start pairing server: " + why); };
  auto creds = tls::Credentials::load(opts_.cert_path, opts_.key_path, "");
  if (!creds.ok()) return fail(creds.message());
  auto tls = tls::Config::server(*creds, tls::PeerCheck::none);
  if (!tls.ok()) return fail(tls.message());
  if (auto st = queue_.ensure_dir(); !st.ok()) return fail(st.message());
  queue_.expire_stale(unix_now());

  http::ServerOptions so;
  so.bind_ip = opts_.bind_ip;
  so.port = opts_.port;
  so.backlog = 64;
  so.tls = *tls;
  so.handshake_timeout_ms = opts_.handshake_timeout_ms;
  so.request_timeout_ms = opts_.request_timeout_ms;
  so.limits.max_body = proto::kMaxPairBody;
  so.allow_keep_alive = false;
  auto alive = alive_.watch();
  http::ServerHooks hooks;
  hooks.admit = [this](const event::SockAddr& peer) {
    std::string ip = peer.ip();
    int64_t now = unix_now();
    // Over the rate limit: dropped without a word, as the original, except one connection per
    // block, which is answered "rate limited" once its request is in, so that a genuine agent
    // learns why (one handshake per block, not one per attempt).
    if (!limiter_.check(ip, now)) return limiter_.tell_blocked(ip);
    limiter_.record_connection(ip, now);
    return true;
  };
  hooks.ready = [this](const std::shared_ptr<http::Connection>& c) {
    conns_[c->id()] = c;
    return true;
  };
  hooks.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    on_request(c, r);
  };
  hooks.bad_request = [this](const std::shared_ptr<http::Connection>& c,
                             const http::RequestParser& p) { on_bad_request(c, p); };
  hooks.closed = [this, alive](http::Connection& c) {
    if (alive.gone()) return;
    conns_.erase(c.id());
    answered_.erase(c.id());
    if (stopping_ && !stopped_ && server_ && server_->open_connections() <= 1) {
      // This was the last one (it is still counted while its hook runs).
      drain_timer_.start(0, [this] { finish_stop(); });
    }
  };
  server_ = std::make_unique<http::Server>(loop_, so, std::move(hooks));
  if (auto st = server_->listen(); !st.ok()) return fail(st.message());
  port_ = server_->port();
  log::info("pairing-mode-start", {{"PORT", std::to_string(port())}});
  if (opts_.on_listening) opts_.on_listening(port());

  if (opts_.read_stdin) {
    stdin_is_tty_ = ::isatty(STDIN_FILENO) == 1;
    interactive_ = stdin_.start([this](const std::string& line) { on_command(line); },
                                [this] { interactive_ = false; }); // EOF: non-interactive
  }
  std::string head = "Pairing mode active on port " + std::to_string(port()) + " (auto-stops in " +
                     std::to_string(opts_.timeout_s) + "s). ";
  if (interactive_)
    print(head + "Ctrl-C or 'quit' to stop.\nWaiting for pairing requests...\n");
  else
    print(head + "Ctrl-C to stop.\nUse 'ctrl-exec-dispatcher list-requests' to see pending "
                 "requests.\n");

  poll_timer_.start(
      opts_.poll_ms, [this] { poll_answers(); }, opts_.poll_ms);
  deadline_timer_.start(static_cast<uint64_t>(opts_.timeout_s) * 1000,
                        [this] { stop(StopReason::timeout); });
  if (opts_.periodic && opts_.periodic->run) {
    periodic_timer_.start(
        opts_.periodic->first_ms,
        [this] {
          auto fn = opts_.periodic->run;
          fn(loop_);
        },
        opts_.periodic->interval_ms);
  }
  return {};
}

void Listener::on_bad_request(const std::shared_ptr<http::Connection>& conn,
                              const http::RequestParser& parser) {
  if (stopping_) {
    conn->abort();
    return;
  }
  switch (parser.error()) {
  case http::ParseError::empty:
    conn->abort(); // a bare probe: nothing to answer
    return;
  case http::ParseError::body_too_large:
    log::info("pair-reject", {{"IP", conn->peer_ip()}, {"REASON", "body-too-large"}});
    answer(conn, proto::pair_error_json(proto::kPairTooLarge));
    return;
  default:
    answer(conn, proto::pair_error_json(proto::kPairInvalidRequest));
    return;
  }
}

bool Listener::queue_full(const std::shared_ptr<http::Connection>& conn) {
  queue_.expire_stale(unix_now());
  if (static_cast<int64_t>(queue_.pending_count()) < opts_.max_queue) return false;
  log::info("pair-reject", {{"IP", conn->peer_ip()}, {"REASON", "queue-full"}});
  answer(conn, proto::pair_error_json(proto::kPairQueueFull));
  return true;
}

void Listener::on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req) {
  if (stopping_) {
    conn->abort();
    return;
  }
  if (limiter_.blocked(conn->peer_ip(), unix_now())) {
    log::info("pair-reject", {{"IP", conn->peer_ip()}, {"REASON", "rate-limited"}});
    answer(conn, proto::pair_error_json(proto::kPairRateLimited));
    return;
  }
  // The method and path are not checked, as in the original: the body is the request.
  auto parsed = proto::parse_pair_request(req.body);
  if (!parsed.request) {
    if (parsed.reason == proto::kPairInvalidHostname)
      log::info("pair-reject", {{"IP", conn->peer_ip()}, {"REASON", "invalid-hostname"}});
    answer(conn, proto::pair_error_json(parsed.reason));
    return;
  }
  if (queue_full(conn)) return;
  std::string source = conn->peer_ip();
  auto alive = alive_.watch();
  auto in = std::make_shared<QueuedInput>();
  in->req = std::move(*parsed.request);
  in->source_ip = source;
  lookup_reverse_dns(loop_, source, opts_.reverse_dns_timeout_ms,
                     [this, alive, conn, in](ReverseDns r) {
                       if (alive.gone()) return;
                       in->rdns = std::move(r);
                       enqueue(conn, std::move(*in));
                     });
}

void Listener::enqueue(const std::shared_ptr<http::Connection>& conn, QueuedInput in) {
  if (stopping_ || conn->closed()) {
    if (!conn->closed()) conn->abort();
    return;
  }
  // Checked again: other requests may have been queued while DNS answered.
  if (queue_full(conn)) return;
  state::PairingRequest r;
  r.id = queue_.new_id();
  r.hostname = in.req.hostname;
  r.ip = in.req.ip.value_or(in.source_ip);
  r.source_ip = in.source_ip;
  r.csr = in.req.csr;
  r.nonce = in.req.nonce;
  r.lookup_by = in.req.lookup_by;
  r.port = in.req.port;
  r.received = iso8601_utc(unix_now());
  r.code = pki::pairing_code(r.csr);
  r.reverse_dns = in.rdns.name;
  r.reverse_confirmed = in.rdns.confirmed ? 1 : 0;
  if (auto st = queue_.add(r); !st.ok()) {
    log::err("pair-reject",
             {{"IP", r.source_ip}, {"REASON", "queue-write-failed"}, {"ERROR", st.message()}});
    answer(conn, proto::pair_error_json("cannot queue request"));
    return;
  }
  log::Fields fields{
      {"AGENT", r.hostname}, {"IP", r.source_ip}, {"REQID", r.id}, {"STATUS", "pending"}};
  if (in.req.ip && *in.req.ip != r.source_ip) fields.emplace_back("REPORTED_IP", *in.req.ip);
  log::info("pair-request", fields);
  print("Pairing request queued: " + r.hostname + " (" + r.ip + ") - ID: " + r.id + "\n");
  conn->send(http::format_response(200, proto::pair_pending_json(r.id)));
  waiters_.push_back({r.id, conn, loop_.now_ms() + opts_.answer_timeout_ms});
  if (interactive_) show_prompt();
}

void Listener::poll_answers() {
  uint64_t now = loop_.now_ms();
  for (size_t i = 0; i < waiters_.size();) {
    Waiter& w = waiters_[i];
    auto p = queue_.poll(w.id);
    if (p.answer != state::PairingAnswer::none) {
      // Delivered even if the agent has gone: the files are cleaned up either way.
      answer(w.conn, p.body);
      queue_.finish(w.id, p.answer);
    } else if (now >= w.deadline_ms) {
      answer(w.conn, proto::pair_denied_json(proto::kPairTimeout));
      queue_.finish(w.id, state::PairingAnswer::none);
    } else {
      ++i;
      continue;
    }
    waiters_.erase(waiters_.begin() + static_cast<long>(i));
  }
}

std::vector<state::PairingRequest> Listener::pending() const {
  std::vector<state::PairingRequest> out;
  for (auto& r : queue_.list(unix_now()))
    if (!path_exists(queue_.approved_path(r.id))) out.push_back(std::move(r));
  return out;
}

void Listener::show_prompt() {
  print(format_prompt(pending()));
}

void Listener::act(bool approve, const state::PairingRequest& r) {
  const auto& fn = approve ? opts_.approve : opts_.deny;
  Status st = fn ? fn(r.id) : error("not available");
  if (!st.ok()) {
    print(std::string(approve ? "Approve failed: " : "Deny failed: ") + st.message() + "\n");
    return;
  }
  poll_answers(); // deliver at once rather than at the next tick
  print("Waiting for next request... (Ctrl-C to exit pairing mode)\n");
  if (!pending().empty()) show_prompt();
}

void Listener::on_command(const std::string& line) {
  if (stopping_) return;
  // A terminal echoes the operator's Enter; piped answers need the line break written.
  if (!stdin_is_tty_) print("\n");
  using K = PromptCommand::Kind;
  PromptCommand c = parse_prompt_command(line);
  switch (c.kind) {
  case K::empty:
    return;
  case K::quit:
    stop(StopReason::quit);
    return;
  case K::list:
    show_prompt();
    return;
  case K::skip:
    print("Skipped. Request remains pending.\n");
    return;
  case K::unknown:
    print(unknown_command_text(c.text));
    return;
  case K::approve:
  case K::deny: {
    auto reqs = pending();
    bool approve = c.kind == K::approve;
    if (c.position > 0) {
      if (static_cast<size_t>(c.position) > reqs.size()) {
        print("No request at position " + std::to_string(c.position) + ".\n");
        return;
      }
      act(approve, reqs[static_cast<size_t>(c.position) - 1]);
      return;
    }
    if (reqs.empty()) {
      print("No pending requests.\n");
    } else if (reqs.size() > 1) {
      print("Multiple requests pending - use a1, a2, etc.\n" + format_prompt(reqs));
    } else {
      act(approve, reqs.front());
    }
    return;
  }
  }
}

void Listener::stop(StopReason why) {
  if (stopping_) return;
  stopping_ = true;
  reason_ = why;
  stdin_.stop();
  poll_timer_.stop();
  deadline_timer_.stop();
  periodic_timer_.stop();
  if (server_) server_->stop_accepting();
  // Last look for answers, then tell everyone still waiting.
  poll_answers();
  for (auto& w : waiters_) {
    answer(w.conn, proto::pair_denied_json(kPairStopped));
    queue_.finish(w.id, state::PairingAnswer::none);
  }
  waiters_.clear();
  // Connections that have not had a request queued get nothing: they are dropped.
  auto conns = conns_;
  for (auto& [id, weak] : conns)
    if (auto c = weak.lock(); c && !c->closed() && !answered_.count(id)) c->abort();
  if (why == StopReason::timeout) {
    print("\nPairing mode timed out after " + std::to_string(opts_.timeout_s) + "s. Stopped.\n");
    log::info("pairing-mode-timeout", {{"PORT", std::to_string(port())}});
  } else {
    print("\nPairing mode stopped.\n");
    log::info("pairing-mode-stop");
  }
  if (!server_ || server_->open_connections() == 0)
    drain_timer_.start(0, [this] { finish_stop(); });
  else
    drain_timer_.start(kDrainMs, [this] { finish_stop(); });
}

void Listener::finish_stop() {
  if (stopped_) return;
  stopped_ = true;
  drain_timer_.stop();
  if (auto fn = on_stopped) fn(reason_);
}

Result<StopReason> run_listener(ListenerOptions opts) {
  event::Loop loop;
  Listener listener(loop, std::move(opts));
  std::optional<StopReason> result;
  listener.on_stopped = [&](StopReason why) {
    result = why;
    loop.stop();
  };
  if (auto st = listener.start(); !st.ok()) return st;
  event::SignalWatcher sigint(loop), sigterm(loop);
  (void)sigint.start(SIGINT, [&](int) { listener.stop(StopReason::signal); });
  (void)sigterm.start(SIGTERM, [&](int) { listener.stop(StopReason::signal); });
  loop.run();
  return result.value_or(StopReason::signal);
}

} // namespace cx::pairing
