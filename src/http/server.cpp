// The HTTP server; see server.hpp.
#include "http/server.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "base/time.hpp"

namespace cx::http {

namespace {

// After a crowd has gone, hand the memory its buffers used back to the system: glibc keeps
// freed heap pages otherwise, and the process would stay at its peak size for good.
void return_free_memory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

// The crowd whose leaving is worth a trim: below it, what could be returned is small.
constexpr size_t kCrowd = 64;

} // namespace

// --- Connection ------------------------------------------------------------------------------

// `peer` is the address read once at accept: asking the socket again could fail (the peer may
// have reset the connection meanwhile, and getpeername then reports nothing), and the address
// book must be given back exactly the address it was given.
Connection::Connection(Server& server, uint64_t id, std::unique_ptr<event::TcpStream> tcp,
                       Phase phase, const event::SockAddr& peer)
    : server_(server), id_(id), peer_(peer), ip_(peer.ip()), tcp_(std::move(tcp)),
      parser_(server.options().limits), phase_(phase) {}

Connection::~Connection() {
  timer_.reset();
  tls_owned_.reset();
  tcp_.reset();
}

void Connection::set_phase(Phase phase) {
  if (closed_ || phase == phase_) return;
  server_.addresses_.move(ip_, phase_, phase);
  Phase was = phase_;
  phase_ = phase;
  if (was == Phase::handshake) server_.handshake_ended(ip_);
}

void Connection::begin_stage(Stage stage) {
  stage_ = stage;
  const ServerOptions& o = server_.options();
  uint64_t now = monotonic_ms();
  uint64_t ms = o.keep_alive_idle_ms;
  if (stage != Stage::idle) {
    if (stage == Stage::head) request_started_ms_ = now;
    uint64_t own = stage == Stage::head ? o.tuning.head_timeout_ms : o.tuning.body_timeout_ms;
    ms = stage_budget_ms(own, o.request_timeout_ms, now - request_started_ms_);
  }
  if (!timer_) timer_ = std::make_unique<event::Timer>(server_.loop());
  if (ms == 0) {
    timer_->stop();
    return;
  }
  std::weak_ptr<Connection> weak = weak_from_this();
  timer_->start(ms, [weak] {
    if (auto self = weak.lock()) self->on_deadline();
  });
}

void Connection::on_deadline() {
  if (closed_ || ending_ || in_request_) return;
  // Slow or stalled: give the slot back. An idle keep-alive connection just closes.
  if (stage_ != Stage::idle) {
    std::string_view stage = stage_ == Stage::head ? "head" : "body";
    ++server_.stats_.timed_out;
    server_.note_crowding("timeout", stage, ip_);
    if (server_.hooks_.timed_out) server_.hooks_.timed_out(*this, stage);
  }
  abort();
}

void Connection::start_reading() {
  std::weak_ptr<Connection> weak = weak_from_this();
  transport_->read_start(
      [weak](std::string_view d) {
        if (auto self = weak.lock()) self->on_data(d);
      },
      [weak](int status) {
        if (auto self = weak.lock()) self->on_end(status);
      });
  begin_stage(Stage::head);
}

void Connection::on_data(std::string_view data) {
  if (closed_ || ending_) return;
  if (in_request_) {
    // A pipelined request while one is being handled: keep it for later, within bounds.
    const auto& lim = server_.options().limits;
    if (pending_.size() + data.size() >
        lim.max_body + lim.max_header_bytes + lim.max_request_line) {
      abort();
      return;
    }
    pending_.append(data);
    return;
  }
  if (stage_ == Stage::idle && !data.empty()) begin_stage(Stage::head);
  std::string_view rest = data;
  Progress p = parser_.feed(rest);
  auto self = shared_from_this();
  if (p.status == ParseStatus::error) {
    if (timer_) timer_->stop();
    in_request_ = true;
    set_phase(Phase::handling);
    if (server_.hooks_.bad_request)
      server_.hooks_.bad_request(self, parser_);
    else
      abort();
    return;
  }
  if (stage_ == Stage::head && parser_.head_complete()) {
    begin_stage(Stage::body);
    if (server_.hooks_.head && !server_.hooks_.head(self, parser_.request())) {
      // The hook has answered or dropped the connection: nothing more is read.
      if (timer_) timer_->stop();
      if (!closed_ && !ending_) {
        in_request_ = true;
        set_phase(Phase::handling);
      }
      return;
    }
    if (closed_ || ending_) return;
  }
  if (p.status == ParseStatus::need_more) return;
  if (timer_) timer_->stop();
  in_request_ = true;
  set_phase(Phase::handling);
  keep_alive_ = server_.options().allow_keep_alive && parser_.wants_keep_alive();
  pending_.assign(rest.substr(p.consumed));
  if (server_.hooks_.request)
    server_.hooks_.request(self, parser_.request());
  else
    abort();
}

void Connection::on_end(int status) {
  if (closed_ || ending_) return;
  if (in_request_) {
    // The client may half-close after sending its request and still read the answer; only a
    // real error ends things while a request is being handled.
    if (status != UV_EOF) abort();
    return;
  }
  if (status == UV_EOF && parser_.finish() == ParseStatus::error && server_.hooks_.bad_request) {
    if (timer_) timer_->stop();
    in_request_ = true;
    set_phase(Phase::handling);
    server_.hooks_.bad_request(shared_from_this(), parser_);
    return;
  }
  abort();
}

void Connection::respond(int code, std::string_view body, bool may_keep_alive,
                         std::string_view content_type) {
  if (closed_ || ending_ || !transport_) return;
  bool keep = keep_alive_ && may_keep_alive && in_request_;
  if (keep) {
    transport_->write(format_response(code, body, {{"Connection", "keep-alive"}}, content_type));
    in_request_ = false;
    keep_alive_ = false;
    set_phase(Phase::waiting);
    parser_.reset();
    begin_stage(Stage::idle);
    if (!pending_.empty()) {
      std::string next = std::move(pending_);
      pending_.clear();
      on_data(next);
    }
    return;
  }
  transport_->write(format_response(code, body, {}, content_type));
  finish();
}

void Connection::begin_stream(int code, std::string_view content_type,
                              const std::vector<HeaderField>& extra_headers) {
  if (closed_ || ending_ || !transport_) return;
  keep_alive_ = false;
  transport_->write(format_stream_head(code, content_type, extra_headers));
}

void Connection::send(std::string bytes) {
  if (closed_ || ending_ || !transport_) return;
  transport_->write(std::move(bytes));
}

size_t Connection::queued_bytes() const {
  return transport_ ? transport_->write_queue_bytes() : 0;
}

void Connection::finish() {
  if (closed_ || ending_) return;
  set_phase(Phase::closing);
  ending_ = true;
  if (timer_) timer_->stop();
  if (!transport_) {
    abort();
    return;
  }
  std::weak_ptr<Connection> weak = weak_from_this();
  transport_->end([weak] {
    if (auto self = weak.lock()) self->mark_closed();
  });
}

void Connection::abort() {
  if (closed_) return;
  if (tls_owned_)
    tls_owned_->close();
  else if (tcp_)
    tcp_->close();
  mark_closed();
}

void Connection::mark_closed() {
  if (closed_) return;
  closed_ = true;
  ending_ = true;
  if (timer_) timer_->stop();
  auto fn = std::move(on_close_);
  if (fn) fn();
  if (server_.hooks_.closed) server_.hooks_.closed(*this);
  server_.release(id_);
}

// --- Server ----------------------------------------------------------------------------------

Server::Server(event::Loop& loop, ServerOptions options, ServerHooks hooks)
    : loop_(loop), options_(std::move(options)), hooks_(std::move(hooks)), listener_(loop),
      crowding_timer_(loop), trim_timer_(loop) {
  crowding_timer_.unref(); // a report never keeps the loop running by itself
  trim_timer_.unref();
}

Server::~Server() {
  listener_.close();
  for (auto& [id, conn] : conns_) {
    conn->closed_ = true; // no hooks: the applet is shutting down
    if (conn->tls_owned_)
      conn->tls_owned_->close();
    else if (conn->tcp_)
      conn->tcp_->close();
  }
}

Status Server::listen() {
  auto st =
      listener_.listen(options_.bind_ip, options_.port, options_.backlog, [this] { on_accept(); });
  if (!st.ok())
    return error(options_.bind_ip + ":" + std::to_string(options_.port) + ": " + st.message());
  return {};
}

void Server::stop_accepting() {
  listener_.close();
}

size_t Server::busy_connections() const {
  size_t n = 0;
  for (const auto& [id, c] : conns_)
    if (c->in_request_) ++n;
  return n;
}

void Server::on_accept() {
  auto accepted = listener_.accept();
  if (!accepted) return;
  std::unique_ptr<event::TcpStream> tcp = std::move(*accepted);
  event::SockAddr peer = tcp->peer();
  if (hooks_.admit && !hooks_.admit(peer)) {
    tcp->close();
    return;
  }
  // Our own limits, before any byte is read: a flood from one address is turned away here, at
  // the cost of an accept and a close.
  const bool tls = options_.tls != nullptr;
  std::string ip = peer.ip();
  Admission a =
      admit_connection(options_.tuning.admission, conns_.size(), addresses_.count(ip), tls);
  if (a.verdict == Admission::Verdict::admit && a.shed) {
    if (shed_oldest()) // the one shed may have been a handshake of this address
      a.queue = admit_connection(options_.tuning.admission, 0, addresses_.count(ip), tls).queue;
    else
      a.verdict = Admission::Verdict::refuse_full;
  }
  if (a.verdict != Admission::Verdict::admit) {
    ++stats_.refused;
    note_crowding("refused", refusal_reason(a.verdict), ip);
    tcp->close();
    return;
  }
  ++stats_.accepted;
  tcp->set_nodelay(true);
  uint64_t id = next_id_++;
  peak_since_trim_ = std::max(peak_since_trim_, conns_.size() + 1);
  Phase phase = !tls ? Phase::waiting : a.queue ? Phase::queued : Phase::handshake;
  std::shared_ptr<Connection> conn(new Connection(*this, id, std::move(tcp), phase, peer));
  conns_[id] = conn;
  addresses_.add(ip, phase);
  if (!tls) {
    conn->transport_ = conn->tcp_.get();
    handshake_done(conn, Status());
    return;
  }
  // The handshake deadline runs from accept, whether the handshake waits its turn or not.
  std::weak_ptr<Connection> weak = conn;
  conn->timer_ = std::make_unique<event::Timer>(loop_);
  conn->timer_->start(options_.handshake_timeout_ms, [this, weak] {
    auto c = weak.lock();
    if (!c) return;
    // A handshake that never got its turn, or whose peer's bytes are still waiting to be
    // read, is this server's crowding, not the peer's failure: it is reported as a timeout
    // and does not count toward the peer's rate limit (on a starved host, a trusted
    // dispatcher's address would otherwise get blocked). One whose peer went quiet is the
    // peer's failure.
    if (c->phase_ == Phase::queued)
      note_crowding("timeout", "handshake-queue", c->ip_);
    else if (c->tls_owned_ && c->tls_owned_->unread_bytes() > 0)
      note_crowding("timeout", "handshake-behind", c->ip_);
    else if (hooks_.handshake_failed)
      hooks_.handshake_failed(c->peer_, "handshake timed out");
    c->abort();
  });
  if (a.queue) {
    queued_[ip].push_back(conn);
    return;
  }
  start_handshake(conn);
}

void Server::start_handshake(const std::shared_ptr<Connection>& conn) {
  conn->set_phase(Phase::handshake);
  conn->tls_owned_ = std::make_unique<tls::Stream>(options_.tls, std::move(conn->tcp_));
  std::weak_ptr<Connection> weak = conn;
  conn->tls_owned_->handshake([this, weak](Status st) {
    if (auto c = weak.lock()) handshake_done(c, st);
  });
}

void Server::handshake_ended(const std::string& ip) {
  // The address's next connection waiting for its turn, if any, starts its handshake.
  auto it = queued_.find(ip);
  if (it == queued_.end()) return;
  std::shared_ptr<Connection> next;
  while (!next && !it->second.empty()) {
    next = it->second.front().lock();
    it->second.pop_front();
    if (next && (next->closed_ || next->phase_ != Phase::queued)) next.reset();
  }
  if (it->second.empty()) queued_.erase(it);
  if (next) start_handshake(next);
}

void Server::forget_queued(const std::string& ip, uint64_t id) {
  auto it = queued_.find(ip);
  if (it == queued_.end()) return;
  auto& q = it->second;
  std::erase_if(q, [id](const std::weak_ptr<Connection>& w) {
    auto c = w.lock();
    return !c || c->id_ == id;
  });
  if (q.empty()) queued_.erase(it);
}

bool Server::shed_oldest() {
  // One pass in order of arrival: the first connection of a peer not authenticated (or one
  // already answered) that is not handling a request; else the first not handling one.
  Connection* victim = nullptr;
  Connection* fallback = nullptr;
  for (const auto& [id, c] : conns_) {
    if (c->phase_ == Phase::handling) continue;
    if (!c->authenticated_ || c->phase_ == Phase::closing) {
      victim = c.get();
      break;
    }
    if (!fallback) fallback = c.get();
  }
  if (!victim) victim = fallback;
  if (!victim) return false;
  ++stats_.shed;
  note_crowding("shed", "full", victim->ip_);
  victim->abort();
  return true;
}

void Server::note_crowding(std::string_view kind, std::string_view reason,
                           const std::string& peer) {
  crowding_.note(kind, reason, peer);
  if (crowding_timer_.active()) return;
  crowding_timer_.start(
      1000,
      [this] {
        auto events = crowding_.take();
        if (events.empty()) {
          crowding_timer_.stop();
          return;
        }
        if (hooks_.crowding) hooks_.crowding(events);
      },
      1000);
}

void Server::handshake_done(const std::shared_ptr<Connection>& conn, Status st) {
  if (conn->closed_) return;
  if (conn->timer_) conn->timer_->stop();
  if (!st.ok()) {
    if (hooks_.handshake_failed) hooks_.handshake_failed(conn->peer_, st.message());
    conn->abort();
    return;
  }
  if (conn->tls_owned_) {
    conn->tls_ = conn->tls_owned_.get();
    conn->transport_ = conn->tls_;
  }
  conn->set_phase(Phase::waiting);
  if (hooks_.ready && !hooks_.ready(conn)) return;
  if (!conn->closed_ && !conn->ending_) conn->start_reading();
}

void Server::release(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::string ip = it->second->ip_;
  Phase phase = it->second->phase_;
  addresses_.remove(ip, phase);
  // Never destroyed inside its own callbacks: the loop frees it on a later iteration.
  loop_.defer_delete(std::move(it->second));
  conns_.erase(it);
  if (conns_.empty() && peak_since_trim_ >= kCrowd) {
    peak_since_trim_ = 0;
    trim_timer_.start(100, return_free_memory); // once the connections are freed too
  }
  if (phase == Phase::handshake) handshake_ended(ip);
  if (phase == Phase::queued) forget_queued(ip, id);
}

} // namespace cx::http
