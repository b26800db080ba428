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
  explicit ConnectionClient(const std::shared_ptr<http::Connection>& conn) : conn_(conn) {}
  void respond(int status, std::string_view body) override {
    if (auto c = conn_.lock()) c->respond(status, body);
  }
  void abort() override {
    if (auto c = conn_.lock()) c->abort();
  }
  void on_close(std::function<void()> fn) override {
    if (auto c = conn_.lock()) c->on_close(std::move(fn));
  }

private:
  std::weak_ptr<http::Connection> conn_;
};

void answer_bad_request(http::Connection& conn, const http::RequestParser& parser) {
  switch (parser.error()) {
  case http::ParseError::empty:
    conn.respond(400, proto::body::empty_request());
    return;
  case http::ParseError::too_many_headers:
  case http::ParseError::headers_too_large:
    conn.respond(431, proto::body::too_many_headers());
    return;
  case http::ParseError::body_too_large:
    conn.respond(413, proto::body::request_too_large());
    return;
  default:
    conn.respond(400, proto::body::bad_request());
    return;
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
  http::ServerHooks h;
  h.admit = [this](const event::SockAddr& peer) { return admit(peer); };
  h.handshake_failed = [this](const event::SockAddr& peer, const std::string& reason) {
    std::string ip = peer.ip();
    log::warning("tls-failure", {{"PEER", ip}, {"REASON", reason}});
    ctx_.record_failure(ip, RateLimiter::Failure::handshake);
  };
  h.ready = [this](const std::shared_ptr<http::Connection>& c) { return ready(c); };
  h.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    on_request(c, r);
  };
  h.bad_request = [](const std::shared_ptr<http::Connection>& c, const http::RequestParser& p) {
    answer_bad_request(*c, p);
  };
  // A closed connection no longer counts as a live request (a run it started still does,
  // through its pending job's copy of the slot).
  h.closed = [](http::Connection& c) {
    if (auto* peer = static_cast<Peer*>(c.user.get())) peer->slot.reset();
  };
  http_ = std::make_unique<http::Server>(loop, std::move(o), std::move(h));
}

AgentServer::~AgentServer() {
  http_.reset(); // connections first: nothing may call back into a half-destroyed server
}

Status AgentServer::listen() {
  return http_->listen();
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
  if (ctx_.live() == 0 && ctx_.pending() == 0) {
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
    conn->abort();
    return false;
  }
  if (ctx_.live() >= static_cast<size_t>(st.config.max_children)) {
    log::warning("overload", {{"PEER", peer->ip}, {"LIVE", std::to_string(ctx_.live())}});
    conn->abort();
    return false;
  }
  if (revoked) {
    log::warning("revoked-cert", {{"PEER", peer->ip}, {"SERIAL", peer->serial}});
    ctx_.record_failure(peer->ip, RateLimiter::Failure::refused);
    conn->respond(403, proto::body::revoked());
    return false;
  }
  peer->slot = ctx_.take_slot();
  conn->user = peer;
  return true;
}

void AgentServer::on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req) {
  auto client = std::make_shared<ConnectionClient>(conn);
  auto* peer = static_cast<Peer*>(conn->user.get());
  if (!peer) {
    client->abort();
    return;
  }
  auto match = match_route(req.method, req.path);
  if (!match) {
    client->respond(404, proto::body::not_found());
    return;
  }
  Call call{std::move(client), *peer, std::move(req.body), std::string(match->param)};
  match->route->handler(ctx_, call);
}

} // namespace cx::agent
