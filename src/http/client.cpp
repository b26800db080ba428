// The HTTP client call; see client.hpp.
#include "http/client.hpp"

#include "base/time.hpp"

namespace cx::http {

struct ClientCall::State : std::enable_shared_from_this<ClientCall::State> {
  event::Loop& loop;
  ClientOptions opts;
  std::string request;
  DoneFn done;
  ResponseFn on_response;
  ClientResult result;
  uint64_t started = 0;
  bool finished = false;

  std::unique_ptr<event::Connector> connector;
  std::unique_ptr<event::TcpStream> tcp;
  std::unique_ptr<tls::Stream> tls_stream;
  event::Transport* transport = nullptr;
  std::unique_ptr<event::Timer> timer;
  std::unique_ptr<event::Timer> deadline;
  ResponseParser parser;

  State(event::Loop& l, ClientOptions o) : loop(l), opts(std::move(o)), parser(opts.limits) {}

  void finish(Status st) {
    if (finished) return;
    finished = true;
    result.status = std::move(st);
    result.elapsed_ms = monotonic_ms() - started;
    timer.reset();
    deadline.reset();
    connector.reset();
    if (tls_stream) tls_stream->close();
    if (tcp) tcp->close();
    auto fn = std::move(done);
    if (fn) fn(std::move(result));
  }

  // (Re)starts the phase timer, which ends the call with `expiry` (0 ms: stops it).
  void arm(uint64_t ms, const Status& expiry) {
    if (!timer) timer = std::make_unique<event::Timer>(loop);
    if (ms == 0) {
      timer->stop();
      return;
    }
    std::weak_ptr<State> weak = weak_from_this();
    timer->start(ms, [weak, expiry] {
      if (auto s = weak.lock()) s->finish(expiry);
    });
  }

  void connected(std::unique_ptr<event::TcpStream> stream) {
    result.local_ip = stream->local().ip();
    if (!opts.tls) {
      tcp = std::move(stream);
      transport = tcp.get();
      send_request();
      return;
    }
    tls_stream = std::make_unique<tls::Stream>(opts.tls, std::move(stream));
    if (opts.resume) tls_stream->set_session(*opts.resume);
    std::weak_ptr<State> weak = weak_from_this();
    tls_stream->handshake([weak](Status st) {
      auto s = weak.lock();
      if (!s || s->finished) return;
      if (!st.ok()) {
        s->finish(st);
        return;
      }
      s->result.tls_resumed = s->tls_stream->resumed();
      s->result.session = s->tls_stream->session();
      s->result.peer_serial = s->tls_stream->peer_serial();
      s->transport = s->tls_stream.get();
      s->send_request();
    });
  }

  void send_request() {
    std::weak_ptr<State> weak = weak_from_this();
    arm(opts.read_timeout_ms, read_timeout());
    transport->read_start(
        [weak](std::string_view d) {
          if (auto s = weak.lock()) s->on_data(d);
        },
        [weak](int status) {
          if (auto s = weak.lock()) s->on_end(status);
        });
    transport->write(std::move(request));
  }

  void on_data(std::string_view data) {
    if (finished) return;
    arm(opts.read_timeout_ms, read_timeout()); // any byte counts as activity
    std::weak_ptr<State> weak = weak_from_this();
    while (!data.empty()) {
      Progress p = parser.feed(data);
      if (p.status == ParseStatus::need_more) {
        if (opts.on_body && parser.head_complete() && !parser.response().body.empty()) {
          auto fn = opts.on_body;
          fn(parser.response());
        }
        return;
      }
      if (p.status == ParseStatus::error) {
        finish(error(ErrorKind::protocol, std::string(parser.error_message())));
        return;
      }
      if (!complete_one()) return;
      if (weak.expired()) return;
      data.remove_prefix(p.consumed);
    }
  }

  // Records a completed response; false when the call is over.
  bool complete_one() {
    result.responses.push_back(parser.response());
    if (on_response) {
      auto fn = on_response;
      fn(result.responses.back());
      if (finished) return false;
    }
    if (static_cast<int>(result.responses.size()) >= opts.responses) {
      finish(Status());
      return false;
    }
    parser.reset();
    return true;
  }

  void on_end(int status) {
    if (finished) return;
    if (status == UV_EOF && parser.finish() == ParseStatus::complete) {
      if (complete_one()) finish(closed_early());
      return;
    }
    if (status != UV_EOF && status != UV_EPROTO) {
      finish(event::connection_error(status));
      return;
    }
    finish(closed_early());
  }

  static Status read_timeout() { return error(ErrorKind::read_timeout, "read timeout"); }
  static Status closed_early() {
    return error(ErrorKind::closed, "connection closed before a complete response");
  }
};

std::unique_ptr<ClientCall> ClientCall::start(event::Loop& loop, ClientOptions options,
                                              std::string request, DoneFn done,
                                              ResponseFn on_response) {
  std::unique_ptr<ClientCall> call(new ClientCall());
  auto st = std::make_shared<State>(loop, std::move(options));
  call->state_ = st;
  st->request = std::move(request);
  st->done = std::move(done);
  st->on_response = std::move(on_response);
  st->started = monotonic_ms();
  st->connector = std::make_unique<event::Connector>(loop);
  std::weak_ptr<State> weak = st;
  // The connect deadline also covers the TLS handshake.
  st->arm(st->opts.connect_timeout_ms, error(ErrorKind::timeout, "connection timed out"));
  if (st->opts.total_timeout_ms > 0) {
    st->deadline = std::make_unique<event::Timer>(loop);
    Status expiry = error(ErrorKind::timeout,
                          "timed out: no complete response within " +
                              std::to_string((st->opts.total_timeout_ms + 999) / 1000) + "s");
    st->deadline->start(st->opts.total_timeout_ms, [weak, expiry] {
      if (auto s = weak.lock()) s->finish(expiry);
    });
  }
  st->connector->connect(st->opts.host, st->opts.port, st->opts.connect_timeout_ms,
                         [weak](Result<std::unique_ptr<event::TcpStream>> r) {
                           auto s = weak.lock();
                           if (!s || s->finished) return;
                           if (!r.ok()) {
                             s->finish(r.status());
                             return;
                           }
                           s->connected(std::move(*r));
                         });
  return call;
}

ClientCall::~ClientCall() {
  if (state_ && !state_->finished) {
    state_->done = nullptr;
    state_->on_response = nullptr;
    state_->finish(Status());
  }
}

} // namespace cx::http
