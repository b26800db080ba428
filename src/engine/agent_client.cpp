// The dispatcher's client for port 7443; see agent_client.hpp.
#include "engine/agent_client.hpp"

#include <uv.h>

#include "base/strings.hpp"
#include "base/time.hpp"
#include "engine/live.hpp"
#include "engine/result.hpp"
#include "http/writer.hpp"

namespace cx::engine {

std::optional<tls::Session> MemorySessionStore::get(const std::string& target) {
  auto it = sessions_.find(target);
  if (it == sessions_.end()) return std::nullopt;
  auto s = tls::Session::load(it->second);
  if (!s.ok()) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return std::move(*s);
}

void MemorySessionStore::put(const std::string& target, const tls::Session& session) {
  sessions_[target] = session.save();
}

void MemorySessionStore::erase(const std::string& target) {
  sessions_.erase(target);
}

FileSessionStore::FileSessionStore(std::string path)
    : cache_(std::make_unique<state::SessionCache>(std::move(path))) {
  cache_->load(unix_now());
}

FileSessionStore::~FileSessionStore() = default;

std::optional<tls::Session> FileSessionStore::get(const std::string& target) {
  auto bytes = cache_->get(target);
  if (!bytes) return std::nullopt;
  auto s = tls::Session::load(*bytes);
  if (!s.ok()) {
    cache_->erase(target); // from another mbedTLS build, or damaged: forget it
    return std::nullopt;
  }
  return std::move(*s);
}

void FileSessionStore::put(const std::string& target, const tls::Session& session) {
  cache_->put(target, session.save(), unix_now());
}

void FileSessionStore::renew(const std::string& target, const tls::Session& session) {
  int64_t now = unix_now();
  auto saved = cache_->saved_at(target);
  if (saved && now - *saved < kSessionRenewAfterSeconds && now >= *saved) return;
  cache_->put(target, session.save(), now);
}

void FileSessionStore::erase(const std::string& target) {
  cache_->erase(target);
}

Status FileSessionStore::save() {
  return cache_->save(unix_now());
}

std::string AgentReply::status_line() const {
  return reason.empty() ? std::to_string(status) : std::to_string(status) + " " + reason;
}

Status AgentReply::failure() const {
  if (status == 0) return error;
  if (is_2xx()) return Status();
  return cx::error(status == 403 ? ErrorKind::denied : ErrorKind::http_status, status_line());
}

Result<std::unique_ptr<AgentClient>>
AgentClient::create(const std::string& cert_path, const std::string& key_path,
                    const std::string& ca_path, uint64_t timeout_ms,
                    std::shared_ptr<SessionStore> sessions, const std::string& pair_record) {
  CX_ASSIGN_OR_RETURN(auto creds,
                      tls::Credentials::load(cert_path, key_path, ca_path, pair_record));
  CX_ASSIGN_OR_RETURN(auto conf, tls::Config::client(creds, tls::PeerCheck::required));
  std::unique_ptr<AgentClient> c(new AgentClient());
  c->identity_ = to_lower(tls::serial_hex(creds->cert()->serial));
  c->tls_ = std::move(conf);
  c->sessions_ = std::move(sessions);
  c->timeout_ms_ = timeout_ms;
  return c;
}

std::unique_ptr<http::ClientCall>
AgentClient::call(event::Loop& loop, std::string_view target, int default_port,
                  std::string_view method, std::string_view path, std::string_view body,
                  std::function<void(AgentReply)> done,
                  std::function<void(const proto::RunChunk&)> on_chunk) {
  HostPort hp = parse_host(target, default_port);
  std::string where = hp.host + ":" + std::to_string(hp.port);
  std::string key = identity_ + "@" + where;
  http::ClientOptions o;
  o.host = hp.host;
  o.port = hp.port;
  o.tls = tls_;
  if (sessions_) o.resume = sessions_->get(key);
  o.connect_timeout_ms = timeout_ms_;
  o.read_timeout_ms = timeout_ms_;
  // Ours (docs/COMPATIBILITY.md): a whole exchange ends after three read timeouts (connect,
  // the wait for the answer, its transfer), so an agent that trickles bytes cannot hold a run,
  // its lock and its slot forever. Our agents send an answer in one piece when it is ready.
  o.total_timeout_ms = timeout_ms_ * 3;
  std::string host_header = hp.port == 7443 ? hp.host : where;
  std::string request = http::format_request(method, path, host_header, body);
  ++counters_.calls;
  uint64_t started = uv_hrtime();
  auto reader = std::make_shared<NdjsonReader>();
  if (on_chunk)
    o.on_body = [reader, on_chunk](const http::Response& partial) {
      if (is_ndjson(partial.header("content-type"))) reader->feed(partial.body, false, on_chunk);
    };
  return http::ClientCall::start(loop, std::move(o), std::move(request),
                                 [this, hp, key, started, reader, on_chunk = std::move(on_chunk),
                                  done = std::move(done)](http::ClientResult r) {
                                   AgentReply reply;
                                   reply.host = hp.host;
                                   reply.port = hp.port;
                                   reply.rtt_us = (uv_hrtime() - started) / 1000;
                                   reply.resumed = r.tls_resumed;
                                   if (!r.peer_serial.empty()) { // the handshake completed
                                     if (r.tls_resumed)
                                       ++counters_.resumed_handshakes;
                                     else
                                       ++counters_.full_handshakes;
                                   }
                                   // A session the agent no longer accepts costs nothing: mbedTLS
                                   // falls back to a full handshake by itself. So the store only
                                   // ever learns newer sessions.
                                   if (sessions_ && r.session) {
                                     if (r.tls_resumed)
                                       sessions_->renew(key, *r.session);
                                     else
                                       sessions_->put(key, *r.session);
                                   }
                                   if (const http::Response* resp = r.response()) {
                                     reply.status = resp->status;
                                     reply.reason = resp->reason;
                                     if (is_ndjson(resp->header("content-type"))) {
                                       reader->feed(resp->body, true, on_chunk);
                                       reply.streamed = true;
                                       reply.chunks = reader->chunks();
                                       reply.body = reader->result().value_or("");
                                     } else {
                                       reply.body = resp->body;
                                     }
                                   } else {
                                     reply.error = r.status.ok() ? error("no response") : r.status;
                                   }
                                   done(std::move(reply));
                                 });
}

} // namespace cx::engine
