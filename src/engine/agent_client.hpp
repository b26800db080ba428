// The dispatcher's client for the agents' port 7443 (dispatcher-and-api §5.1): mutual TLS with
// the dispatcher's cert and key, the agent verified against the CA (no hostname check), one
// request per connection, `read_timeout` applied to connecting and as an inactivity timeout,
// and TLS session resumption through a SessionStore (a 0600 file for the CLI, memory for the
// API), so that a second call to the same agent costs a resumed handshake only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "event/loop.hpp"
#include "http/client.hpp"
#include "proto/agent_wire.hpp"
#include "state/session_cache.hpp"
#include "tls/tls.hpp"

namespace cx::engine {

// Where sessions to resume are kept, by "<our serial>@<host>:<port>".
class SessionStore {
public:
  virtual ~SessionStore() = default;
  virtual std::optional<tls::Session> get(const std::string& target) = 0;
  virtual void put(const std::string& target, const tls::Session& session) = 0;
  virtual void erase(const std::string& target) = 0;
  // After a resumed handshake: the session (with the ticket the agent just renewed) replaces
  // the stored one, or, where storing costs a file write, only once the stored one has aged.
  virtual void renew(const std::string& target, const tls::Session& session) {
    put(target, session);
  }
};

// A resumed session's stored ticket is kept until it is this old: the file is then rewritten
// at most once an hour per agent instead of at every call, well inside the 12-hour lifetime.
inline constexpr int64_t kSessionRenewAfterSeconds = 3600;

// Sessions in memory, for a long-running process (the API).
class MemorySessionStore final : public SessionStore {
public:
  std::optional<tls::Session> get(const std::string& target) override;
  void put(const std::string& target, const tls::Session& session) override;
  void erase(const std::string& target) override;

private:
  std::map<std::string, std::string> sessions_; // serialised, so a Session can be made per use
};

// Sessions in a 0600 file shared by successive CLI runs (state::SessionCache): loaded when
// created, written back by save() once the command's exchanges are over.
class FileSessionStore final : public SessionStore {
public:
  explicit FileSessionStore(std::string path);
  ~FileSessionStore() override;
  std::optional<tls::Session> get(const std::string& target) override;
  void put(const std::string& target, const tls::Session& session) override;
  void erase(const std::string& target) override;
  void renew(const std::string& target, const tls::Session& session) override;
  // Writes the sessions learnt since the file was read. Failure is not an error for the
  // command (the next run makes a full handshake); it is returned for logging.
  Status save();

private:
  std::unique_ptr<state::SessionCache> cache_;
};

// The outcome of one exchange with an agent.
struct AgentReply {
  std::string host; // the connect host (an IP under lookup_by=ip)
  int port = 7443;
  // The HTTP status, or 0 when no response arrived; then `error` holds the transport failure
  // with its kind (refused, read_timeout, tls, ...: see http::ClientResult).
  int status = 0;
  std::string reason; // the status line's phrase
  std::string body;
  Status error;
  uint64_t rtt_us = 0;
  bool resumed = false; // the TLS handshake resumed a session
  // Ours: the answer was a live-output stream (NDJSON); `body` is then its result line, ""
  // when the stream ended without one, and `chunks` counts the output lines before it.
  bool streamed = false;
  size_t chunks = 0;

  bool is_2xx() const { return status >= 200 && status < 300; }
  // The original's error for a non-2xx answer: the status line, "<code> <phrase>".
  std::string status_line() const;
  // Why the exchange did not succeed: the transport failure; for a non-2xx answer the status
  // line, of kind denied for a 403 (the agent refused us) and http_status otherwise; ok for a
  // 2xx answer.
  Status failure() const;
};

struct AgentClientCounters {
  uint64_t calls = 0, full_handshakes = 0, resumed_handshakes = 0;
};

class AgentClient {
public:
  // Loads the dispatcher's credentials (cert, key) and the CA. Errors name the file. With
  // `pair_record`, the cert/key match check is skipped while both files are unchanged
  // (tls::Credentials::load).
  static Result<std::unique_ptr<AgentClient>>
  create(const std::string& cert_path, const std::string& key_path, const std::string& ca_path,
         uint64_t timeout_ms, std::shared_ptr<SessionStore> sessions,
         const std::string& pair_record = "");

  // One request to `target` ("host" or "host:port"; `default_port` applies to a bare host).
  // `done` runs once, from the loop. Destroying the returned call cancels it silently.
  // An NDJSON answer (a streamed /run, engine/live.hpp) is read as it arrives: each output
  // chunk goes to `on_chunk` (optional) before `done` gets the result line as the body.
  std::unique_ptr<http::ClientCall>
  call(event::Loop& loop, std::string_view target, int default_port, std::string_view method,
       std::string_view path, std::string_view body, std::function<void(AgentReply)> done,
       std::function<void(const proto::RunChunk&)> on_chunk = nullptr);

  uint64_t timeout_ms() const { return timeout_ms_; }
  // Our certificate's serial (lowercase hex): sessions are stored per identity as well as per
  // target, because a resumed session presents the certificate it was made with, and after a
  // rotation that identity may no longer be trusted.
  const std::string& identity() const { return identity_; }
  const AgentClientCounters& counters() const { return counters_; }

private:
  AgentClient() = default;
  std::shared_ptr<tls::Config> tls_;
  std::shared_ptr<SessionStore> sessions_;
  uint64_t timeout_ms_ = 60000;
  std::string identity_;
  AgentClientCounters counters_;
};

} // namespace cx::engine
