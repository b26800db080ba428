// The agent's 7443 server: admission and dispatch; see server.hpp.
#include "agent/server.hpp"

#include "agent/routes.hpp"
#include "log/log.hpp"
#include "proto/agent_wire.hpp"

namespace cx::agent {

namespace {

// The HTTP connection as the handlers' Client. It does not keep the connection alive: a
// request still running after its client left answers nobody.
class ConnectionClient final : public Client {
public:
  ConnectionClient(const std::shared_ptr<http::Connection>& conn, AgentMetrics& metrics)
      : conn_(conn), metrics_(metrics) {}
  // The route's label in the metrics, once the request is routed.
  void set_route(std::string route) { route_ = std::move(route); }
  void respond(int status, std::string_view body) override {
    if (auto c = conn_.lock()) {
      if (!c->closed()) metrics_.answered(route_, status);
      c->respond(status, body);
    }
  }
  void begin_stream(int status, std::string_view content_type) override {
    if (auto c = conn_.lock()) {
      if (!c->closed()) metrics_.answered(route_, status);
      c->begin_stream(status, content_type);
    }
  }
  void send(std::string bytes) override {
    if (auto c = conn_.lock()) c->send(std::move(bytes));
  }
  void end_stream() override {
    if (auto c = conn_.lock()) c->finish();
  }
  void abort() override {
    if (auto c = conn_.lock()) c->abort();
  }
  void on_close(std::function<void()> fn) override {
    if (auto c = conn_.lock()) c->on_close(std::move(fn));
  }

private:
  std::weak_ptr<http::Connection> conn_;
  AgentMetrics& metrics_;
  std::string route_ = "unmatched";
};

// The status and body for a malformed request.
std::pair<int, std::string> bad_request_answer(const http::RequestParser& parser) {
  switch (parser.error()) {
  case http::ParseError::empty:
    return {400, proto::body::empty_request()};
  case http::ParseError::too_many_headers:
  case http::ParseError::headers_too_large:
    return {431, proto::body::too_many_headers()};
  case http::ParseError::body_too_large:
    return {413, proto::body::request_too_large()};
  default:
    return {400, proto::body::bad_request()};
  }
}

} // namespace

AgentServer::AgentServer(event::Loop& loop, Paths paths, std::shared_ptr<State> state,
                         std::shared_ptr<tls::Config> tls, Identity identity,
                         ServerSettings settings)
    : ctx_(loop, std::move(paths), std::move(state), std::move(identity)), idle_poll_(loop) {
  ctx_.on_drop([this] { check_idle(); });
  http::ServerOptions o;
  o.bind_ip = settings.bind_ip;
  o.port = settings.port;
  o.tls = std::move(tls);
  o.handshake_timeout_ms = settings.handshake_timeout_ms;
  o.request_timeout_ms = settings.request_timeout_ms;
  o.allow_keep_alive = false; // one request per connection, as the original
  o.tuning = server_tuning(ctx_.state()->config);
  http::ServerHooks h;
  h.admit = [this](const event::SockAddr& peer) { return admit(peer); };
  h.handshake_failed = [this](const event::SockAddr& peer, const std::string& reason) {
    std::string ip = peer.ip();
    log::warning("tls-failure", {{"PEER", ip}, {"REASON", reason}});
    ctx_.metrics().refused("tls-failure");
    ctx_.record_failure(ip, RateLimiter::Failure::handshake);
  };
  h.ready = [this](const std::shared_ptr<http::Connection>& c) { return ready(c); };
  h.timed_out = [this](http::Connection& c, std::string_view) {
    // A peer not in the map that cannot send its request in time counts as a refusal; a
    // trusted dispatcher is never throttled.
    if (untrusted_.contains(c.id()))
      ctx_.record_failure(c.peer_ip(), RateLimiter::Failure::refused);
  };
  h.head = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    return on_head(c, r);
  };
  h.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    on_request(c, r);
  };
  h.bad_request = [this](const std::shared_ptr<http::Connection>& c, const http::RequestParser& p) {
    auto [code, body] = bad_request_answer(p);
    ctx_.metrics().answered("malformed", code);
    c->respond(code, body);
  };
  h.closed = [this](http::Connection& c) { on_closed(c); };
  // One line a second per kind of event, with how many it stands for: conn-refused,
  // conn-shed, request-timeout.
  h.crowding = [](const std::vector<http::EventTally::Entry>& events) {
    for (const auto& e : events) {
      std::string action = e.kind == "timeout" ? "request-timeout" : "conn-" + e.kind;
      log::warning(action,
                   {{"PEER", e.peer}, {"REASON", e.reason}, {"COUNT", std::to_string(e.count)}});
    }
  };
  http_ = std::make_unique<http::Server>(loop, std::move(o), std::move(h));
}

AgentServer::~AgentServer() {
  http_.reset(); // connections first: nothing may call back into a half-destroyed server
}

Status AgentServer::listen() {
  return http_->listen();
}

bool AgentServer::reload() {
  if (!ctx_.reload()) return false;
  http_->retune(server_tuning(ctx_.state()->config));
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
  // Connections still arriving (handshake, request on its way) are waited for too: each has
  // a deadline, and a request already sent is answered.
  if (ctx_.live() == 0 && ctx_.pending() == 0 && http_->open_connections() == 0) {
    idle_poll_.stop();
    auto fn = std::move(on_idle_);
    on_idle_ = nullptr;
    fn();
  }
}

// --- The connection pipeline -------------------------------------------------------------------

bool AgentServer::admit(const event::SockAddr& peer) {
  std::string ip = peer.ip();
  const State& st = *ctx_.state();
  if (!st.allowed_ips.unrestricted() && !st.allowed_ips.allows(ip)) {
    log::warning("ip-block", {{"PEER", ip}});
    ctx_.metrics().refused("ip-block");
    return false;
  }
  // A blocked address costs no crypto, apart from one connection at a time for a trusted
  // dispatcher behind it; the rest are dropped silently, as the original dropped them.
  if (ctx_.blocked(ip) && http_->from(ip).pending() >= kBlockedAddressConnections) {
    http_->note_crowding("refused", "blocked", ip);
    ctx_.metrics().refused("rate-limit");
    return false;
  }
  return true;
}

bool AgentServer::ready(const std::shared_ptr<http::Connection>& conn) {
  auto peer = std::make_shared<Peer>();
  peer->ip = conn->peer_ip();
  peer->serial = conn->peer_serial();
  peer->key = peer_key(peer->serial);
  const State& st = *ctx_.state();
  bool revoked = !peer->serial.empty() && st.revoked.contains(peer->key);
  bool trusted = !revoked && st.trusted.find(peer->key) != nullptr;

  // A blocked IP gets no response, unless the certificate it shows is a trusted
  // dispatcher's: those are never throttled (docs/COMPATIBILITY.md).
  if (!trusted && ctx_.blocked(peer->ip)) {
    ctx_.metrics().refused("rate-limit");
    conn->abort();
    return false;
  }
  if (revoked) {
    log::warning("revoked-cert", {{"PEER", peer->ip}, {"SERIAL", peer->serial}});
    ctx_.metrics().refused("revoked-cert");
    ctx_.record_failure(peer->ip, RateLimiter::Failure::refused);
    conn->respond(403, proto::body::revoked());
    return false;
  }
  conn->user = peer;
  if (trusted) {
    conn->set_authenticated();
    return true;
  }
  return join_untrusted(conn, *peer);
}

bool AgentServer::join_untrusted(const std::shared_ptr<http::Connection>& conn, const Peer& peer) {
  // Peers not in the map share a small pool: they may still ask for /renew and
  // /renew-complete, and must not take the trusted dispatchers' slots. When it is full, the
  // oldest member still sending its request makes room; when every member is being answered,
  // the newcomer gets the map gate's answer at once.
  auto room = untrusted_.make_room(
      static_cast<size_t>(ctx_.state()->config.max_untrusted), [this](uint64_t id) {
        auto it = untrusted_conns_.find(id);
        auto c = it == untrusted_conns_.end() ? nullptr : it->second.lock();
        return c && c->phase() == http::Phase::waiting;
      });
  if (!room) {
    log::warning("serial-reject",
                 {{"PEER", peer.ip}, {"PEER_SERIAL", peer.serial}, {"REQID", "(none)"}});
    ctx_.metrics().refused("serial-reject");
    ctx_.record_failure(peer.ip, RateLimiter::Failure::refused);
    conn->respond(403, proto::body::serial_mismatch());
    return false;
  }
  if (*room != 0) {
    auto victim = untrusted_conns_[*room].lock();
    http_->note_crowding("shed", "untrusted", victim->peer_ip());
    ctx_.record_failure(victim->peer_ip(), RateLimiter::Failure::refused);
    victim->abort(); // on_closed() takes it out of the pool
  }
  untrusted_.add(conn->id());
  untrusted_conns_[conn->id()] = conn;
  return true;
}

bool AgentServer::on_head(const std::shared_ptr<http::Connection>& conn, http::Request& head) {
  if (!untrusted_.contains(conn->id())) return true;
  auto* peer = static_cast<Peer*>(conn->user.get());
  if (peer && ctx_.state()->trusted.find(peer->key)) {
    // Trusted since the handshake (a SIGHUP reloaded the map): an ordinary request now.
    untrusted_.remove(conn->id());
    untrusted_conns_.erase(conn->id());
    conn->set_authenticated();
    return true;
  }
  auto match = match_route(head.method, head.path);
  if (match && !match->route->map_gated) return true; // read the body, then handle it
  // The map gate (or 404) answers without the body: the handlers refuse before reading it.
  head.body.clear();
  on_request(conn, head);
  return false;
}

void AgentServer::on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req) {
  auto client = std::make_shared<ConnectionClient>(conn, ctx_.metrics());
  auto* peer = static_cast<Peer*>(conn->user.get());
  if (!peer) {
    client->abort();
    return;
  }
  // A complete request from a trusted dispatcher takes a slot; peers not in the map are
  // bounded by their pool instead.
  if (!untrusted_.contains(conn->id())) {
    size_t cap = static_cast<size_t>(ctx_.state()->config.max_children);
    if (ctx_.live() >= cap) {
      log::warning("overload", {{"PEER", peer->ip}, {"LIVE", std::to_string(ctx_.live())}});
      ctx_.metrics().refused("overload");
      client->abort();
      return;
    }
    peer->slot = ctx_.take_slot();
  }
  auto match = match_route(req.method, req.path);
  if (!match) {
    client->respond(404, proto::body::not_found());
    return;
  }
  client->set_route(std::string(match->route->method) + " " + std::string(match->route->path));
  Call call{std::move(client), *peer, std::move(req.body), std::string(match->param)};
  match->route->handler(ctx_, call);
}

void AgentServer::on_closed(http::Connection& conn) {
  // A closed connection no longer counts as a live request (a run it started still does,
  // through its pending job's copy of the slot).
  if (auto* peer = static_cast<Peer*>(conn.user.get())) peer->slot.reset();
  if (untrusted_.remove(conn.id())) untrusted_conns_.erase(conn.id());
}

} // namespace cx::agent
