// TLS over a libuv TCP stream with mbedTLS 2.28: credentials, the shared cipher policy, server
// and client configurations (with session tickets and a session cache so clients resume), and
// a non-blocking Stream that implements event::Transport.
//
// Policy (agent-and-wire §3.1): TLS 1.2 only (mbedTLS 2.28 has no production TLS 1.3, see
// docs/COMPATIBILITY.md), ECDHE with AES-GCM, X25519 preferred. No hostname checks: trust
// comes from the private CA alone.
#pragma once

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <memory>
#include <optional>
#include <string>

#include "base/status.hpp"
#include "event/tcp.hpp"
#include "event/transport.hpp"

namespace cx::tls {

// Our certificate chain and private key, and the CA that peers must chain to. Any part may be
// absent (a pairing client has none; a pairing server has no CA).
class Credentials {
public:
  Credentials();
  ~Credentials();
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;

  // Empty paths are skipped. Errors name the file; unusable contents are of kind config.
  // Checking that the certificate matches the key costs a private-key operation (about 8
  // million instructions for P-256, most of a warm CLI call). With `pair_record`, a file that
  // remembers the device, inode, size and mtime of the cert and key files last found to match,
  // the check is skipped while both files are unchanged, and the record is rewritten (best
  // effort) after a check that passes. A stale or forged record can at worst let a mismatched
  // pair through to the handshake, which then fails.
  static Result<std::shared_ptr<Credentials>> load(const std::string& cert_path,
                                                   const std::string& key_path,
                                                   const std::string& ca_path,
                                                   const std::string& pair_record = "");
  static Result<std::shared_ptr<Credentials>>
  from_pem(const std::string& cert_pem, const std::string& key_pem, const std::string& ca_pem);

  bool has_own() const { return has_own_; }
  bool has_ca() const { return has_ca_; }
  mbedtls_x509_crt* cert() { return &cert_; }
  mbedtls_pk_context* key() { return &key_; }
  mbedtls_x509_crt* ca() { return &ca_; }

private:
  // The input of from_pem an error is about, so that load() can name its file.
  enum class Part { cert, key, pair, ca };
  static Result<std::shared_ptr<Credentials>> parse(const std::string& cert_pem,
                                                    const std::string& key_pem,
                                                    const std::string& ca_pem, Part& failed,
                                                    bool check_pair = true);

  mbedtls_x509_crt cert_;
  mbedtls_pk_context key_;
  mbedtls_x509_crt ca_;
  bool has_own_ = false, has_ca_ = false;
};

enum class PeerCheck {
  none,     // do not ask for / do not verify the peer certificate
  required, // the peer must present a certificate that chains to our CA
};

// An mbedtls_ssl_config with the shared policy. Servers also own a ticket key and a session
// cache; both live as long as the Config, i.e. the process.
class Config {
public:
  ~Config();
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;

  static Result<std::shared_ptr<Config>> server(std::shared_ptr<Credentials> creds, PeerCheck peer);
  static Result<std::shared_ptr<Config>> client(std::shared_ptr<Credentials> creds, PeerCheck peer);

  mbedtls_ssl_config* get() { return &conf_; }
  bool is_server() const { return server_; }

private:
  Config();
  mbedtls_ssl_config conf_;
  mbedtls_ssl_ticket_context ticket_;
  mbedtls_ssl_cache_context cache_;
  std::shared_ptr<Credentials> creds_;
  bool server_ = false;
};

// A client session saved after a handshake, to resume the next connection to the same peer.
class Session {
public:
  Session();
  ~Session();
  Session(Session&& o) noexcept;
  Session& operator=(Session&& o) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // mbedTLS's own serialisation (includes the ticket); load() rejects bytes from another
  // mbedTLS version or build, so a stale cache simply fails to load.
  std::string save() const;
  static Result<Session> load(std::string_view bytes);

  mbedtls_ssl_session* get() { return s_.get(); }
  const mbedtls_ssl_session* get() const { return s_.get(); }

private:
  std::unique_ptr<mbedtls_ssl_session> s_;
};

// A certificate serial exactly as `openssl x509 -serial` prints it: base/serial_hex.hpp's
// openssl_serial_hex of the DER content octets (a negative serial as "-" and its magnitude).
std::string serial_hex(const mbedtls_x509_buf& serial);

class Stream final : public event::Transport {
public:
  Stream(std::shared_ptr<Config> config, std::unique_ptr<event::TcpStream> tcp);
  ~Stream() override;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Client only, before handshake(): try to resume this session.
  void set_session(const Session& session);
  // Runs the handshake; `done` gets ok or the failure, "TLS handshake failed: ..." (e.g.
  // "X509 - Certificate verification failed ..."), of kind tls, or of the connection's kind
  // when the TCP connection timed out or lost its route under it. The caller owns any deadline.
  void handshake(std::function<void(Status)> done);

  bool handshake_done() const { return state_ == State::open; }
  // True when the handshake resumed a session (no certificate was exchanged).
  bool resumed() const { return handshake_done() && verify_calls_ == 0 && resumable_check_; }
  // Client only, after the handshake: the session to save for the next connection.
  std::optional<Session> session() const;
  // The peer certificate (also available on a resumed session), or nullptr.
  const mbedtls_x509_crt* peer_cert() const;
  // serial_hex() of the peer certificate, lower-cased; "" without one.
  std::string peer_serial() const;
  std::string ciphersuite() const;
  // Bytes the peer has sent that the TLS layer has not consumed yet (kernel and own buffer).
  size_t unread_bytes() const;

  // event::Transport, usable once the handshake is done.
  void read_start(DataFn on_data, EndFn on_end) override;
  void read_stop() override;
  void write(std::string data) override;
  void end(std::function<void()> done = nullptr) override;
  void close() override;
  bool is_open() const override;
  event::SockAddr peer() const override;
  size_t write_queue_bytes() const override;

private:
  enum class State { init, handshaking, open, closed };
  static int bio_send(void* ctx, const unsigned char* buf, size_t len);
  static int bio_recv(void* ctx, unsigned char* buf, size_t len);
  static int on_verify(void* ctx, mbedtls_x509_crt* crt, int depth, uint32_t* flags);
  void on_tcp_data(std::string_view data);
  void on_tcp_end(int status);
  void drive_handshake();
  void drive_read();

  std::shared_ptr<Config> config_;
  std::unique_ptr<event::TcpStream> tcp_;
  mbedtls_ssl_context ssl_;
  State state_ = State::init;
  std::string in_; // ciphertext received but not yet consumed by mbedTLS
  size_t in_pos_ = 0;
  bool tcp_eof_ = false;
  int tcp_error_ = 0;
  int verify_calls_ = 0;
  bool resumable_check_ = false;
  bool reading_ = false;
  std::function<void(Status)> on_handshake_;
  DataFn on_data_;
  EndFn on_end_;
  event::SockAddr peer_addr_;
  event::Liveness alive_; // a data handler may destroy this stream
};

} // namespace cx::tls
