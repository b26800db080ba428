// TLS over libuv with mbedTLS; see tls.hpp.
#include "tls/tls.hpp"

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>

#include <sys/stat.h>

#include <cstring>

#include "base/files.hpp"
#include "base/serial_hex.hpp"
#include "tls/mbed.hpp"

namespace cx::tls {

namespace {
// The original's TLS 1.2 list (ECDHE-{RSA,ECDSA}-AES{256,128}-GCM); RSA certs from Perl peers
// and our ECDSA certs both negotiate one of these.
const int kCiphersuites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                             MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                             MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                             MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0};
const mbedtls_ecp_group_id kCurves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                        MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};
const int kSigHashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512, MBEDTLS_MD_NONE};
// Tickets stay valid this long; a dispatcher resumes within it, then does a full handshake.
constexpr uint32_t kTicketLifetimeS = 12 * 3600;

// Reads a PEM file into `out`; an empty path is skipped.
Status read_pem(const std::string& path, std::string& out) {
  if (path.empty()) return {};
  CX_ASSIGN_OR_RETURN(out, read_file(path, 1u << 20));
  return {};
}

// mbedTLS wants PEM input to include the terminating NUL in its length.
const unsigned char* pem_ptr(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.c_str());
}
} // namespace

std::string serial_hex(const mbedtls_x509_buf& serial) {
  return openssl_serial_hex(serial.p, serial.len);
}

// --- Credentials -----------------------------------------------------------------------------

Credentials::Credentials() {
  mbedtls_x509_crt_init(&cert_);
  mbedtls_pk_init(&key_);
  mbedtls_x509_crt_init(&ca_);
}

Credentials::~Credentials() {
  mbedtls_x509_crt_free(&cert_);
  mbedtls_pk_free(&key_);
  mbedtls_x509_crt_free(&ca_);
}

namespace {

// "<dev> <ino> <size> <mtime_ns>" of a file, or "" when it cannot be stat'ed.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
         std::to_string(st.st_size) + " " +
         std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
}

} // namespace

Result<std::shared_ptr<Credentials>> Credentials::load(const std::string& cert_path,
                                                       const std::string& key_path,
                                                       const std::string& ca_path,
                                                       const std::string& pair_record) {
  // Stamped before reading: a file changed while we read it gets a new stamp next time.
  std::string stamp;
  bool check_pair = true;
  if (!pair_record.empty() && !cert_path.empty() && !key_path.empty()) {
    std::string c = file_stamp(cert_path), k = file_stamp(key_path);
    if (!c.empty() && !k.empty()) {
      stamp = "ctrl-exec pair-check 1\n" + cert_path + "\n" + c + "\n" + key_path + "\n" + k + "\n";
      auto seen = read_file(pair_record, 4096);
      check_pair = !(seen.ok() && *seen == stamp);
    }
  }
  std::string cert, key, ca;
  CX_TRY(read_pem(cert_path, cert));
  CX_TRY(read_pem(key_path, key));
  CX_TRY(read_pem(ca_path, ca));
  Part part = Part::cert;
  auto creds = parse(cert, key, ca, part, check_pair);
  if (creds) {
    if (check_pair && !stamp.empty())
      (void)write_file_atomic(pair_record, stamp, {.mode = 0640, .fsync = false});
    return creds;
  }
  std::string files;
  switch (part) {
  case Part::cert:
    files = "'" + cert_path + "'";
    break;
  case Part::key:
    files = "'" + key_path + "'";
    break;
  case Part::pair:
    files = "'" + cert_path + "' and '" + key_path + "'";
    break;
  case Part::ca:
    files = "'" + ca_path + "'";
    break;
  }
  return error(creds.kind(), files + ": " + creds.message());
}

Result<std::shared_ptr<Credentials>> Credentials::from_pem(const std::string& cert_pem,
                                                           const std::string& key_pem,
                                                           const std::string& ca_pem) {
  Part ignored = Part::cert;
  return parse(cert_pem, key_pem, ca_pem, ignored);
}

Result<std::shared_ptr<Credentials>> Credentials::parse(const std::string& cert_pem,
                                                        const std::string& key_pem,
                                                        const std::string& ca_pem, Part& failed,
                                                        bool check_pair) {
  auto c = std::make_shared<Credentials>();
  auto fail = [&failed](Part part, std::string message) {
    failed = part;
    return error(ErrorKind::config, std::move(message));
  };
  if (!cert_pem.empty() || !key_pem.empty()) {
    if (cert_pem.empty() || key_pem.empty())
      return fail(Part::cert, "certificate and key must be given together");
    int rc = mbedtls_x509_crt_parse(&c->cert_, pem_ptr(cert_pem), cert_pem.size() + 1);
    if (rc != 0) return fail(Part::cert, "certificate cannot be parsed: " + mbed_error(rc));
    rc = mbedtls_pk_parse_key(&c->key_, pem_ptr(key_pem), key_pem.size() + 1, nullptr, 0);
    if (rc != 0) return fail(Part::key, "key cannot be parsed: " + mbed_error(rc));
    if (check_pair && mbedtls_pk_check_pair(&c->cert_.pk, &c->key_) != 0)
      return fail(Part::pair, "the certificate does not match the key");
    c->has_own_ = true;
  }
  if (!ca_pem.empty()) {
    int rc = mbedtls_x509_crt_parse(&c->ca_, pem_ptr(ca_pem), ca_pem.size() + 1);
    if (rc != 0) return fail(Part::ca, "CA certificate cannot be parsed: " + mbed_error(rc));
    c->has_ca_ = true;
  }
  return c;
}

// --- Config ----------------------------------------------------------------------------------

Config::Config() {
  mbedtls_ssl_config_init(&conf_);
  mbedtls_ssl_ticket_init(&ticket_);
  mbedtls_ssl_cache_init(&cache_);
}

Config::~Config() {
  mbedtls_ssl_config_free(&conf_);
  mbedtls_ssl_ticket_free(&ticket_);
  mbedtls_ssl_cache_free(&cache_);
}

namespace {
Status apply_policy(mbedtls_ssl_config* conf, Credentials* creds, PeerCheck peer) {
  mbedtls_ssl_conf_rng(conf, rng, rng_context());
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(conf, kCiphersuites);
  mbedtls_ssl_conf_curves(conf, kCurves);
  mbedtls_ssl_conf_sig_hashes(conf, kSigHashes);
  mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  if (peer == PeerCheck::required) {
    if (!creds || !creds->has_ca())
      return error(ErrorKind::config, "a CA certificate is needed to verify peers");
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(conf, creds->ca(), nullptr);
  } else {
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
  }
  if (creds && creds->has_own()) {
    int rc = mbedtls_ssl_conf_own_cert(conf, creds->cert(), creds->key());
    if (rc != 0) return error(ErrorKind::config, "cannot use certificate: " + mbed_error(rc));
  }
  return {};
}
} // namespace

Result<std::shared_ptr<Config>> Config::server(std::shared_ptr<Credentials> creds, PeerCheck peer) {
  std::shared_ptr<Config> c(new Config());
  c->server_ = true;
  c->creds_ = creds;
  if (!creds || !creds->has_own())
    return error(ErrorKind::config, "a TLS server needs a certificate and key");
  int rc = mbedtls_ssl_config_defaults(&c->conf_, MBEDTLS_SSL_IS_SERVER,
                                       MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return error("TLS configuration failed: " + mbed_error(rc));
  CX_TRY(apply_policy(&c->conf_, creds.get(), peer));
  rc = mbedtls_ssl_ticket_setup(&c->ticket_, rng, rng_context(), MBEDTLS_CIPHER_AES_256_GCM,
                                kTicketLifetimeS);
  if (rc != 0) return error("TLS ticket setup failed: " + mbed_error(rc));
  mbedtls_ssl_conf_session_tickets_cb(&c->conf_, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse,
                                      &c->ticket_);
  mbedtls_ssl_cache_set_timeout(&c->cache_, kTicketLifetimeS);
  mbedtls_ssl_conf_session_cache(&c->conf_, &c->cache_, mbedtls_ssl_cache_get,
                                 mbedtls_ssl_cache_set);
  return c;
}

Result<std::shared_ptr<Config>> Config::client(std::shared_ptr<Credentials> creds, PeerCheck peer) {
  std::shared_ptr<Config> c(new Config());
  c->creds_ = creds;
  int rc = mbedtls_ssl_config_defaults(&c->conf_, MBEDTLS_SSL_IS_CLIENT,
                                       MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return error("TLS configuration failed: " + mbed_error(rc));
  CX_TRY(apply_policy(&c->conf_, creds.get(), peer));
  mbedtls_ssl_conf_session_tickets(&c->conf_, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
  return c;
}

// --- Session ---------------------------------------------------------------------------------

Session::Session() : s_(std::make_unique<mbedtls_ssl_session>()) {
  mbedtls_ssl_session_init(s_.get());
}

Session::~Session() {
  if (s_) mbedtls_ssl_session_free(s_.get());
}

Session::Session(Session&& o) noexcept : s_(std::move(o.s_)) {}

Session& Session::operator=(Session&& o) noexcept {
  if (this != &o) {
    if (s_) mbedtls_ssl_session_free(s_.get());
    s_ = std::move(o.s_);
  }
  return *this;
}

std::string Session::save() const {
  size_t len = 0;
  mbedtls_ssl_session_save(s_.get(), nullptr, 0, &len);
  std::string out(len, '\0');
  if (len == 0 || mbedtls_ssl_session_save(s_.get(), reinterpret_cast<unsigned char*>(out.data()),
                                           len, &len) != 0)
    return {};
  out.resize(len);
  return out;
}

Result<Session> Session::load(std::string_view bytes) {
  Session s;
  int rc = mbedtls_ssl_session_load(s.get(), reinterpret_cast<const unsigned char*>(bytes.data()),
                                    bytes.size());
  if (rc != 0) return error("cannot load TLS session: " + mbed_error(rc));
  return s;
}

// --- Stream ----------------------------------------------------------------------------------

Stream::Stream(std::shared_ptr<Config> config, std::unique_ptr<event::TcpStream> tcp)
    : config_(std::move(config)), tcp_(std::move(tcp)) {
  mbedtls_ssl_init(&ssl_);
  // Setup only fails on allocation failure.
  CX_CHECK(mbedtls_ssl_setup(&ssl_, config_->get()) == 0);
  mbedtls_ssl_set_bio(&ssl_, this, bio_send, bio_recv, nullptr);
  mbedtls_ssl_set_verify(&ssl_, on_verify, this);
  peer_addr_ = tcp_->peer();
}

Stream::~Stream() {
  alive_.kill();
  tcp_.reset();
  mbedtls_ssl_free(&ssl_);
}

int Stream::bio_send(void* ctx, const unsigned char* buf, size_t len) {
  auto* self = static_cast<Stream*>(ctx);
  if (!self->tcp_ || !self->tcp_->is_open()) return MBEDTLS_ERR_NET_SEND_FAILED;
  self->tcp_->write(std::string(reinterpret_cast<const char*>(buf), len));
  return static_cast<int>(len);
}

int Stream::bio_recv(void* ctx, unsigned char* buf, size_t len) {
  auto* self = static_cast<Stream*>(ctx);
  size_t avail = self->in_.size() - self->in_pos_;
  if (avail > 0) {
    size_t n = std::min(avail, len);
    std::memcpy(buf, self->in_.data() + self->in_pos_, n);
    self->in_pos_ += n;
    if (self->in_pos_ == self->in_.size()) {
      self->in_.clear();
      self->in_pos_ = 0;
    }
    return static_cast<int>(n);
  }
  if (self->tcp_error_) return MBEDTLS_ERR_NET_RECV_FAILED;
  if (self->tcp_eof_) return 0; // mbedTLS reads 0 as the peer closing the connection
  return MBEDTLS_ERR_SSL_WANT_READ;
}

int Stream::on_verify(void* ctx, mbedtls_x509_crt*, int, uint32_t*) {
  static_cast<Stream*>(ctx)->verify_calls_++;
  return 0; // keep mbedTLS's own verdict in *flags
}

void Stream::set_session(const Session& session) {
  mbedtls_ssl_set_session(&ssl_, session.get());
}

void Stream::handshake(std::function<void(Status)> done) {
  on_handshake_ = std::move(done);
  state_ = State::handshaking;
  resumable_check_ = config_->get()->authmode == MBEDTLS_SSL_VERIFY_REQUIRED;
  tcp_->read_start([this](std::string_view d) { on_tcp_data(d); },
                   [this](int status) { on_tcp_end(status); });
  drive_handshake();
}

void Stream::drive_handshake() {
  int rc = mbedtls_ssl_handshake(&ssl_);
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return;
  auto done = std::move(on_handshake_);
  if (rc == 0) {
    state_ = State::open;
    if (done) done(Status());
    return;
  }
  state_ = State::closed;
  std::string why;
  ErrorKind kind = ErrorKind::tls;
  if (rc == MBEDTLS_ERR_SSL_CONN_EOF || (tcp_eof_ && rc == MBEDTLS_ERR_NET_RECV_FAILED)) {
    why = "connection closed by peer";
    kind = ErrorKind::tls_closed;
  } else if (rc == MBEDTLS_ERR_NET_RECV_FAILED && tcp_error_ == UV_ECONNRESET) {
    why = "connection error: " + event::uv_error(tcp_error_);
    kind = ErrorKind::tls_closed;
  } else if (rc == MBEDTLS_ERR_NET_RECV_FAILED) {
    why = "connection error: " + event::uv_error(tcp_error_);
    // A connection that times out or loses its route under the handshake failed for that
    // reason, not for TLS: the original's rewrite names the timeout or the route first.
    ErrorKind cause = event::connection_error_kind(tcp_error_);
    if (cause == ErrorKind::refused || cause == ErrorKind::unreachable ||
        cause == ErrorKind::timeout)
      kind = cause;
  } else {
    why = mbed_error(rc);
    uint32_t flags = mbedtls_ssl_get_verify_result(&ssl_);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != uint32_t(-1)) {
      char info[512];
      mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
      std::string text = info;
      while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
      for (auto& c : text)
        if (c == '\n') c = ';';
      why += ": " + text;
    }
  }
  if (done) done(error(kind, "TLS handshake failed: " + why));
}

void Stream::on_tcp_data(std::string_view data) {
  in_.append(data);
  if (state_ == State::handshaking)
    drive_handshake();
  else if (state_ == State::open && reading_)
    drive_read();
}

void Stream::on_tcp_end(int status) {
  if (status == UV_EOF)
    tcp_eof_ = true;
  else
    tcp_error_ = status;
  if (state_ == State::handshaking)
    drive_handshake();
  else if (state_ == State::open && reading_)
    drive_read();
}

void Stream::read_start(DataFn on_data, EndFn on_end) {
  on_data_ = std::move(on_data);
  on_end_ = std::move(on_end);
  reading_ = true;
  // Application data may have arrived together with the handshake's last flight.
  drive_read();
}

void Stream::read_stop() {
  reading_ = false;
}

void Stream::drive_read() {
  auto guard = alive_.watch();
  unsigned char buf[16384];
  while (reading_ && state_ == State::open) {
    int rc = mbedtls_ssl_read(&ssl_, buf, sizeof buf);
    if (rc > 0) {
      auto fn = on_data_;
      fn(std::string_view(reinterpret_cast<char*>(buf), static_cast<size_t>(rc)));
      if (guard.gone()) return; // the handler destroyed this stream
      continue;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return;
    reading_ = false;
    int status =
        (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == MBEDTLS_ERR_SSL_CONN_EOF)
            ? UV_EOF
            : (tcp_error_ ? tcp_error_ : UV_EPROTO);
    auto fn = on_end_;
    if (fn) fn(status);
    return;
  }
}

void Stream::write(std::string data) {
  if (state_ != State::open) return;
  size_t off = 0;
  while (off < data.size()) {
    int rc = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data.data()) + off,
                               data.size() - off);
    if (rc <= 0) return; // the connection is broken; the reader sees the end
    off += static_cast<size_t>(rc);
  }
}

void Stream::end(std::function<void()> done) {
  if (state_ == State::open) mbedtls_ssl_close_notify(&ssl_);
  state_ = State::closed;
  if (tcp_)
    tcp_->end(std::move(done));
  else if (done)
    done();
}

void Stream::close() {
  state_ = State::closed;
  if (tcp_) tcp_->close();
}

bool Stream::is_open() const {
  return tcp_ && tcp_->is_open() && state_ != State::closed;
}

event::SockAddr Stream::peer() const {
  return peer_addr_;
}

size_t Stream::unread_bytes() const {
  return in_.size() + (tcp_ ? tcp_->unread_bytes() : 0);
}

size_t Stream::write_queue_bytes() const {
  return tcp_ ? tcp_->write_queue_bytes() : 0;
}

std::optional<Session> Stream::session() const {
  Session s;
  if (mbedtls_ssl_get_session(&ssl_, s.get()) != 0) return std::nullopt;
  return s;
}

const mbedtls_x509_crt* Stream::peer_cert() const {
  return mbedtls_ssl_get_peer_cert(&ssl_);
}

std::string Stream::peer_serial() const {
  const mbedtls_x509_crt* crt = peer_cert();
  if (!crt) return "";
  std::string hex = serial_hex(crt->serial);
  for (auto& c : hex)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  return hex;
}

std::string Stream::ciphersuite() const {
  const char* name = mbedtls_ssl_get_ciphersuite(&ssl_);
  return name ? name : "";
}

} // namespace cx::tls
