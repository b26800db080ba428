// The shared state store on etcd (issue 17): state::KvStore over etcd v3's JSON gateway
// (POST /v3/kv/range, put, txn, deleterange, /v3/lease/grant, keepalive, revoke; keys and values
// base64, 64-bit numbers as strings), spoken by our own HTTP client, so no new library.
//
// Each call is synchronous: it runs a private event loop for its one request, so it may be made
// from any thread (the CLI inline, the API on libuv's thread pool, a lease's keep-alive thread).
// Requests are HTTP/1.0, one per connection: the gateway then answers with a plain body instead
// of chunks, and a keep-alive call ends after its one answer. As everything on event/, it
// needs SIGPIPE ignored (event::ignore_sigpipe(), which every applet calls first): a member
// that hangs up mid-handshake is otherwise the end of the process.
//
// A member that cannot be reached (refused, timed out, TLS failure), or that answers that it
// cannot serve now (gRPC Unavailable: the cluster is electing a leader), is skipped for the next
// one in the list, starting from the last that answered; any other answer from etcd, even an
// error, is final. When no member could serve because of an election, the call is made again
// for up to the request timeout. With every member down the error names them all.
//
// A request that timed out, or that etcd answered "request timed out", may still have been
// applied (a put waiting out a leader election): made again, a create() may then answer false
// for the key that very call created. The keys that matter (locks) are bound to a lease their
// holder revokes when it gives up, so they do not outlive it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "state/kv.hpp"
#include "tls/tls.hpp"
#include "json/json.hpp"

namespace cx::etcdkv {

struct Endpoint {
  std::string url; // as configured, for messages
  std::string host;
  int port = 2379;
  bool https = false;
};

// "http://host:port" or "https://host:port" (an IPv6 host in brackets). Errors name the
// endpoint.
Result<Endpoint> parse_endpoint(std::string_view url);

struct Options {
  std::vector<std::string> endpoints;
  std::string prefix = "/ctrl-exec/";
  std::string ca, cert, key; // TLS to etcd: all three, for https endpoints
  uint64_t dial_timeout_ms = 2000;
  uint64_t timeout_ms = 5000;
};

class EtcdKv final : public state::KvStore {
public:
  static Result<std::shared_ptr<EtcdKv>> open(const Options& options);

  std::string describe() const override;
  Result<std::optional<state::KvEntry>> get(std::string_view key) override;
  Result<std::vector<state::KvEntry>> list(std::string_view prefix) override;
  Status put(std::string_view key, std::string_view value, int64_t lease = 0) override;
  Result<bool> create(std::string_view key, std::string_view value, int64_t lease = 0) override;
  Result<bool> replace(std::string_view key, int64_t revision, std::string_view value,
                       int64_t lease = 0) override;
  Result<bool> remove(std::string_view key) override;
  Result<bool> move(std::string_view from, int64_t from_revision, std::string_view to,
                    std::string_view value) override;
  Result<int64_t> grant_lease(int64_t ttl_s) override;
  Status keep_alive(int64_t lease) override;
  Status revoke_lease(int64_t lease) override;

  // One gateway call: POST `path` with `body`, the answer's JSON object. When etcd answers
  // an error ({"error", "code", "message"}: kind http_status, etcd's message), `etcd_code`, if
  // given, receives its gRPC code (5: not found), for callers that decide by it. Public for tests.
  Result<json::Document> call(std::string_view path, const std::string& body,
                              int64_t* etcd_code = nullptr);

private:
  EtcdKv() = default;
  // One pass over the members, from the last that answered. What the pass learnt besides its
  // result: etcd's gRPC code when etcd answered an error, and, when no member answered, whether
  // one of them could not serve because the cluster is electing a leader (then call() makes the
  // pass again).
  struct CallInfo {
    int64_t etcd_code = 0;
    bool electing = false;
  };
  Result<json::Document> call_once(std::string_view path, const std::string& body, CallInfo& info);
  std::string full(std::string_view key) const { return prefix_ + std::string(key); }

  std::vector<Endpoint> endpoints_;
  std::string prefix_;
  std::shared_ptr<tls::Config> tls_;
  uint64_t dial_timeout_ms_ = 2000, timeout_ms_ = 5000;
  std::atomic<size_t> good_{0}; // the member that answered last
};

} // namespace cx::etcdkv
