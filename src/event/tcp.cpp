// TCP streams, listeners and the connector; see tcp.hpp.
#include "event/tcp.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/ioctl.h>

#include <cstring>

namespace cx::event {

ErrorKind connection_error_kind(int uv_code) {
  switch (uv_code) {
  case UV_ECONNREFUSED:
    return ErrorKind::refused;
  case UV_EHOSTUNREACH:
  case UV_ENETUNREACH:
    return ErrorKind::unreachable;
  case UV_ETIMEDOUT:
    return ErrorKind::timeout;
  case UV_EAI_ADDRFAMILY:
  case UV_EAI_AGAIN:
  case UV_EAI_BADFLAGS:
  case UV_EAI_BADHINTS:
  case UV_EAI_FAIL:
  case UV_EAI_FAMILY:
  case UV_EAI_NODATA:
  case UV_EAI_NONAME:
  case UV_EAI_OVERFLOW:
  case UV_EAI_PROTOCOL:
  case UV_EAI_SERVICE:
  case UV_EAI_SOCKTYPE:
    return ErrorKind::dns;
  default:
    return ErrorKind::io;
  }
}

Status connection_error(int uv_code) {
  return error(connection_error_kind(uv_code), uv_error(uv_code));
}

std::optional<SockAddr> SockAddr::from_ip(const std::string& ip, int port) {
  SockAddr a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (uv_ip4_addr(ip.c_str(), port, v4) == 0 && ip.find(':') == std::string::npos) {
    a.len = sizeof(sockaddr_in);
    return a;
  }
  a.storage = {};
  if (uv_ip6_addr(ip.c_str(), port, v6) == 0) {
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

SockAddr SockAddr::from_sockaddr(const sockaddr* sa, socklen_t len) {
  SockAddr a;
  std::memcpy(&a.storage, sa, std::min<size_t>(len, sizeof a.storage));
  a.len = len;
  return a;
}

std::string SockAddr::ip() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (storage.ss_family == AF_INET) {
    uv_ip4_name(reinterpret_cast<const sockaddr_in*>(&storage), buf, sizeof buf);
  } else if (storage.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<const sockaddr_in6*>(&storage), buf, sizeof buf);
  } else {
    return "unknown";
  }
  return buf;
}

int SockAddr::port() const {
  if (storage.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

// --- TcpStream -------------------------------------------------------------------------------

TcpStream::TcpStream(Loop& loop) : h_(new uv_tcp_t) {
  uv_tcp_init(loop.get(), h_);
  h_->data = this;
}

void TcpStream::read_start(DataFn on_data, EndFn on_end) {
  if (!h_) return;
  on_data_ = std::move(on_data);
  on_end_ = std::move(on_end);
  int rc = uv_read_start(
      stream(),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        std::unique_ptr<char[]> owned(buf->base);
        auto* self = static_cast<TcpStream*>(s->data);
        if (!self || n == 0) return;
        if (n > 0) {
          // The handler may close or destroy the stream; it is the last thing we do.
          auto fn = self->on_data_;
          fn(std::string_view(buf->base, static_cast<size_t>(n)));
          return;
        }
        uv_read_stop(s);
        auto fn = self->on_end_;
        if (fn) fn(static_cast<int>(n));
      });
  if (rc != 0 && on_end_) {
    auto fn = on_end_;
    fn(rc);
  }
}

void TcpStream::read_stop() {
  if (h_) uv_read_stop(stream());
}

namespace {
struct WriteReq {
  uv_write_t req;
  std::string data;
  TcpStream::DoneFn done;
};
struct ShutdownReq {
  uv_shutdown_t req;
  TcpStream::DoneFn done;
};
} // namespace

void TcpStream::write(std::string data, DoneFn done) {
  if (!h_) return;
  auto* w = new WriteReq{{}, std::move(data), std::move(done)};
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* r, int status) {
    auto* w = reinterpret_cast<WriteReq*>(r);
    std::unique_ptr<WriteReq> owned(w);
    // A closed stream has data == nullptr: its owner is gone, so the callback is dropped.
    if (r->handle->data && w->done) w->done(status);
  });
  if (rc != 0) {
    std::unique_ptr<WriteReq> owned(w);
    if (owned->done) owned->done(rc);
  }
}

size_t TcpStream::write_queue_bytes() const {
  return h_ ? h_->write_queue_size : 0;
}

void TcpStream::shutdown(DoneFn done) {
  if (!h_) return;
  auto* s = new ShutdownReq{{}, std::move(done)};
  int rc = uv_shutdown(&s->req, stream(), [](uv_shutdown_t* r, int status) {
    std::unique_ptr<ShutdownReq> owned(reinterpret_cast<ShutdownReq*>(r));
    if (r->handle->data && owned->done) owned->done(status);
  });
  if (rc != 0) {
    std::unique_ptr<ShutdownReq> owned(s);
    if (owned->done) owned->done(rc);
  }
}

void TcpStream::close() {
  linger_.reset();
  detail::close_and_delete(h_);
  h_ = nullptr;
}

void TcpStream::end(std::function<void()> done) {
  if (!h_) {
    if (done) done();
    return;
  }
  // After our FIN, read and discard until the peer closes too (or the linger time passes):
  // closing with unread input would make the kernel send a reset that can destroy the
  // response the peer has not read yet.
  auto finish = [this, done = std::move(done)](int) {
    close();
    if (done) done();
  };
  shutdown([this, finish](int status) {
    if (status != 0) {
      finish(status);
      return;
    }
    linger_ = std::make_unique<Timer>(h_->loop);
    linger_->start(2000, [finish] { finish(UV_ETIMEDOUT); });
    // The stream is usually still reading (a TLS stream always is), and libuv refuses a
    // second uv_read_start with EALREADY, which would close at once: stop, then discard.
    read_stop();
    read_start([](std::string_view) {}, finish);
  });
}

void TcpStream::set_nodelay(bool on) {
  if (h_) uv_tcp_nodelay(h_, on ? 1 : 0);
}

namespace {
// One end of a TCP handle (uv_tcp_getpeername or uv_tcp_getsockname); empty when unknown.
SockAddr handle_address(const uv_tcp_t* h, int (*query)(const uv_tcp_t*, sockaddr*, int*)) {
  SockAddr a;
  int len = sizeof a.storage;
  if (h && query(h, reinterpret_cast<sockaddr*>(&a.storage), &len) == 0)
    a.len = static_cast<socklen_t>(len);
  return a;
}
} // namespace

size_t TcpStream::unread_bytes() const {
  uv_os_fd_t fd;
  int n = 0;
  if (!h_ || uv_fileno(reinterpret_cast<const uv_handle_t*>(h_), &fd) != 0) return 0;
  if (::ioctl(fd, FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

SockAddr TcpStream::peer() const {
  return handle_address(h_, uv_tcp_getpeername);
}

SockAddr TcpStream::local() const {
  return handle_address(h_, uv_tcp_getsockname);
}

// --- TcpListener -----------------------------------------------------------------------------

TcpListener::TcpListener(Loop& loop) : loop_(loop), h_(new uv_tcp_t) {
  uv_tcp_init(loop.get(), h_);
  h_->data = this;
}

Status TcpListener::listen(const std::string& bind_ip, int port, int backlog,
                           std::function<void()> on_connection) {
  auto addr = SockAddr::from_ip(bind_ip, port);
  if (!addr) return error("invalid bind address '" + bind_ip + "'");
  on_connection_ = std::move(on_connection);
  int rc = uv_tcp_bind(h_, addr->get(), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(h_), backlog, [](uv_stream_t* s, int status) {
      auto* self = static_cast<TcpListener*>(s->data);
      if (!self || status < 0) return;
      auto fn = self->on_connection_;
      fn();
    });
  if (rc != 0) return connection_error(rc);
  return {};
}

Result<std::unique_ptr<TcpStream>> TcpListener::accept() {
  auto stream = std::make_unique<TcpStream>(loop_);
  int rc = uv_accept(reinterpret_cast<uv_stream_t*>(h_), stream->stream());
  if (rc != 0) return error(ErrorKind::io, "accept failed: " + uv_error(rc));
  return stream;
}

int TcpListener::local_port() const {
  return handle_address(h_, uv_tcp_getsockname).port();
}

void TcpListener::close() {
  detail::close_and_delete(h_);
  h_ = nullptr;
}

// --- Connector -------------------------------------------------------------------------------

struct Connector::State {
  Loop& loop;
  std::string host;
  int port = 0;
  DoneFn done;
  bool finished = false;
  std::vector<SockAddr> addrs;
  size_t next = 0;
  Status last_error; // of the last address tried
  std::unique_ptr<TcpStream> attempt;
  std::unique_ptr<Timer> deadline;

  explicit State(Loop& l) : loop(l) {}

  void finish(Result<std::unique_ptr<TcpStream>> r) {
    if (finished) return;
    finished = true;
    deadline.reset();
    auto fn = std::move(done);
    fn(std::move(r));
  }
};

namespace {
void try_next(const std::shared_ptr<Connector::State>& st);

Status resolve_failure(const std::string& host, int uv_code) {
  return error(ErrorKind::dns, "cannot resolve host '" + host + "': " + uv_error(uv_code));
}

struct ConnectReq {
  uv_connect_t req;
  std::shared_ptr<Connector::State> st;
};

struct ResolveReq {
  uv_getaddrinfo_t req;
  std::shared_ptr<Connector::State> st;
};

void try_next(const std::shared_ptr<Connector::State>& st) {
  if (st->finished) return;
  if (st->next >= st->addrs.size()) {
    st->attempt.reset();
    st->finish(st->last_error.ok() ? error("no address to connect to") : st->last_error);
    return;
  }
  const SockAddr& addr = st->addrs[st->next++];
  st->attempt = std::make_unique<TcpStream>(st->loop);
  auto* c = new ConnectReq{{}, st};
  int rc =
      uv_tcp_connect(&c->req, st->attempt->handle(), addr.get(), [](uv_connect_t* r, int status) {
        std::unique_ptr<ConnectReq> owned(reinterpret_cast<ConnectReq*>(r));
        auto st = owned->st;
        if (st->finished || status == UV_ECANCELED) return;
        if (status == 0) {
          st->attempt->set_nodelay(true);
          st->finish(std::move(st->attempt));
          return;
        }
        st->last_error = connection_error(status);
        st->attempt.reset();
        try_next(st);
      });
  if (rc != 0) {
    delete c;
    st->last_error = connection_error(rc);
    st->attempt.reset();
    try_next(st);
  }
}
} // namespace

Connector::Connector(Loop& loop) : state_(std::make_shared<State>(loop)) {}

Connector::~Connector() {
  // Mark finished so late callbacks (resolution, connect) do nothing, and drop the attempt.
  state_->finished = true;
  state_->deadline.reset();
  state_->attempt.reset();
  state_->done = nullptr;
}

void Connector::connect(const std::string& host, int port, uint64_t timeout_ms, DoneFn done) {
  auto st = state_;
  st->host = host;
  st->port = port;
  st->done = std::move(done);
  if (timeout_ms > 0) {
    st->deadline = std::make_unique<Timer>(st->loop);
    std::weak_ptr<State> weak = st;
    st->deadline->start(timeout_ms, [weak] {
      if (auto s = weak.lock()) {
        s->attempt.reset();
        s->finish(error(ErrorKind::timeout, "connection timed out"));
      }
    });
  }
  if (auto literal = SockAddr::from_ip(host, port)) {
    st->addrs.push_back(*literal);
    try_next(st);
    return;
  }
  auto* r = new ResolveReq{{}, st};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = uv_getaddrinfo(
      st->loop.get(), &r->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        std::unique_ptr<ResolveReq> owned(reinterpret_cast<ResolveReq*>(req));
        auto st = owned->st;
        if (st->finished) {
          uv_freeaddrinfo(res);
          return;
        }
        if (status != 0) {
          uv_freeaddrinfo(res);
          st->finish(resolve_failure(st->host, status));
          return;
        }
        // IPv4 first: agents listen on the IPv4 wildcard (agent-and-wire §2.2).
        for (int family : {AF_INET, AF_INET6})
          for (addrinfo* ai = res; ai; ai = ai->ai_next)
            if (ai->ai_family == family) {
              SockAddr a = SockAddr::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
              if (family == AF_INET)
                reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port =
                    htons(static_cast<uint16_t>(st->port));
              else
                reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port =
                    htons(static_cast<uint16_t>(st->port));
              st->addrs.push_back(a);
            }
        uv_freeaddrinfo(res);
        try_next(st);
      },
      host.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete r;
    st->finish(resolve_failure(host, rc));
  }
}

} // namespace cx::event
