// Tests for the etcd client (src/etcdkv/etcd_kv.cpp; tag [etcdkv]) against a fake gateway on
// loopback: the endpoint list, the exact request of each operation, the reading of etcd's
// answers (64-bit numbers as strings, proto3's omitted defaults), etcd's error bodies and the
// failover between members. The same client against a real etcd: test/e2e/etcd/test_client.py.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "base/strings.hpp"
#include "etcdkv/etcd_kv.hpp"

using namespace cx;
using namespace cx::etcdkv;

namespace {

// A one-connection-at-a-time HTTP server on 127.0.0.1:<free>: it records each request (the
// request line and the body) and answers it with the next queued response, then closes, as
// etcd's gateway does for an HTTP/1.0 request. An empty queued response means: read the
// request, answer nothing, and hold the connection until the client gives up.
class FakeGateway {
public:
  struct Request {
    std::string line; // "POST /v3/kv/range HTTP/1.0"
    std::string body;
  };

  FakeGateway() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeGateway() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  FakeGateway(const FakeGateway&) = delete;
  FakeGateway& operator=(const FakeGateway&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void answer(std::string raw) {
    std::lock_guard lock(mu_);
    answers_.push_back(std::move(raw));
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

private:
  bool wait_readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }

  void serve() {
    while (!stop_) {
      if (!wait_readable(fd_, 20)) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      handle(c);
      ::close(c);
    }
  }

  void handle(int c) {
    std::string in;
    size_t head_end = std::string::npos, need = 0;
    char buf[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (head_end != std::string::npos && in.size() >= head_end + 4 + need) break;
      if (!wait_readable(c, 20)) continue;
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        size_t at = in.find("Content-Length: ");
        if (at != std::string::npos && at < head_end)
          need = std::stoul(in.substr(at + 16, in.find("\r\n", at) - at - 16));
      }
    }
    if (head_end == std::string::npos) return;
    std::string answer;
    {
      std::lock_guard lock(mu_);
      requests_.push_back({in.substr(0, in.find("\r\n")), in.substr(head_end + 4)});
      if (!answers_.empty()) {
        answer = std::move(answers_.front());
        answers_.pop_front();
      } else {
        answer = "HTTP/1.0 599 No Answer Queued\r\n\r\n";
      }
    }
    if (answer.empty()) { // silent: until the client closes
      while (!stop_ && std::chrono::steady_clock::now() < deadline)
        if (wait_readable(c, 20) && ::read(c, buf, sizeof buf) <= 0) return;
      return;
    }
    for (size_t off = 0; off < answer.size();) {
      ssize_t n = ::write(c, answer.data() + off, answer.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::deque<std::string> answers_;
  std::vector<Request> requests_;
  std::thread thread_;
};

// The gateway's answer to an HTTP/1.0 request: no Content-Length, the body ends at the close.
std::string ok(const std::string& json) {
  return "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json;
}
std::string status(int code, const std::string& body) {
  return "HTTP/1.0 " + std::to_string(code) +
         " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}
const std::string kHeader =
    R"("header":{"cluster_id":"6818629797439372587","member_id":"7181237535118622478","revision":"9","raft_term":"2"})";

// A port nothing listens on (bound, then closed).
std::string dead_url() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

std::shared_ptr<EtcdKv> client(std::vector<std::string> endpoints, uint64_t timeout_ms = 2000) {
  Options o;
  o.endpoints = std::move(endpoints);
  o.prefix = "/p/";
  o.dial_timeout_ms = 1000;
  o.timeout_ms = timeout_ms;
  auto kv = EtcdKv::open(o);
  REQUIRE(kv.ok());
  return *kv;
}

} // namespace

TEST_CASE("etcd endpoints: what parses, and errors that name the endpoint", "[etcdkv]") {
  struct Row {
    const char* url;
    const char* host; // nullptr: an error
    int port;
    bool https;
    const char* error;
  };
  const Row rows[] = {
      {"http://127.0.0.1:2379", "127.0.0.1", 2379, false, ""},
      {"https://etcd-1.example:2380/", "etcd-1.example", 2380, true, ""},
      {"http://[::1]:12379", "::1", 12379, false, ""},
      {"http://h:65535", "h", 65535, false, ""},
      {"127.0.0.1:2379", nullptr, 0, false,
       "etcd_endpoints: '127.0.0.1:2379' is not http://host:port or https://host:port"},
      {"ftp://h:1", nullptr, 0, false,
       "etcd_endpoints: 'ftp://h:1' is not http://host:port or https://host:port"},
      {"HTTP://h:1", nullptr, 0, false,
       "etcd_endpoints: 'HTTP://h:1' is not http://host:port or https://host:port"},
      {"http://h", nullptr, 0, false, "etcd_endpoints: 'http://h' needs a port"},
      {"http://h:", nullptr, 0, false, "etcd_endpoints: 'http://h:' has no valid port"},
      {"http://h:0", nullptr, 0, false, "etcd_endpoints: 'http://h:0' has no valid port"},
      {"http://h:65536", nullptr, 0, false, "etcd_endpoints: 'http://h:65536' has no valid port"},
      {"http://h:12a", nullptr, 0, false, "etcd_endpoints: 'http://h:12a' has no valid port"},
      {"http://:2379", nullptr, 0, false, "etcd_endpoints: 'http://:2379' has no host"},
      {"http://h/x:2379", nullptr, 0, false, "etcd_endpoints: 'http://h/x:2379' has no host"},
      {"http://[::1:2379", nullptr, 0, false,
       "etcd_endpoints: 'http://[::1:2379' has an unclosed ["},
      {"http://[::1]", nullptr, 0, false, "etcd_endpoints: 'http://[::1]' needs a port"},
  };
  for (const Row& r : rows) {
    INFO(r.url);
    auto e = parse_endpoint(r.url);
    if (!r.host) {
      REQUIRE_FALSE(e.ok());
      CHECK(e.kind() == ErrorKind::config);
      CHECK(e.message() == r.error);
      continue;
    }
    REQUIRE(e.ok());
    CHECK(e->url == r.url);
    CHECK(e->host == r.host);
    CHECK(e->port == r.port);
    CHECK(e->https == r.https);
  }
}

TEST_CASE("etcd open: the endpoint list and TLS files", "[etcdkv]") {
  Options o;
  auto none = EtcdKv::open(o);
  CHECK(none.kind() == ErrorKind::config);
  CHECK(none.message() == "etcd_endpoints: no endpoint");

  o.endpoints = {"http://a:2379", "b:2379"};
  auto bad = EtcdKv::open(o);
  CHECK(bad.kind() == ErrorKind::config);
  CHECK(bad.message() == "etcd_endpoints: 'b:2379' is not http://host:port or https://host:port");

  o.endpoints = {"http://a:2379", "https://b:2379"};
  auto no_tls = EtcdKv::open(o);
  CHECK(no_tls.kind() == ErrorKind::config);
  CHECK(no_tls.message() == "etcd_ca, etcd_cert and etcd_key: required for https etcd endpoints");

  o.endpoints = {"http://a:2379", "http://b:2380"};
  auto kv = EtcdKv::open(o);
  REQUIRE(kv.ok());
  CHECK((*kv)->describe() == "etcd http://a:2379,http://b:2380");
}

TEST_CASE("etcd requests: the path and body of each operation", "[etcdkv]") {
  // Keys are the prefix "/p/" and the key, base64: "/p/a" is L3AvYQ==, "/p/" L3Av, "/p0" L3Aw.
  struct Row {
    const char* name;
    std::function<void(EtcdKv&)> op;
    std::string answer;
    const char* path;
    const char* body;
  };
  const std::string empty = ok("{" + kHeader + "}");
  const std::string txn = ok("{" + kHeader + R"(,"succeeded":true})");
  const Row rows[] = {
      {"get", [](EtcdKv& kv) { CHECK(kv.get("a").ok()); }, empty, "/v3/kv/range",
       R"({"key":"L3AvYQ=="})"},
      {"list", [](EtcdKv& kv) { CHECK(kv.list("").ok()); }, empty, "/v3/kv/range",
       R"({"key":"L3Av","range_end":"L3Aw","limit":"1000"})"},
      {"list x", [](EtcdKv& kv) { CHECK(kv.list("x").ok()); }, empty, "/v3/kv/range",
       R"({"key":"L3AveA==","range_end":"L3AveQ==","limit":"1000"})"},
      {"put", [](EtcdKv& kv) { CHECK(kv.put("a", "v").ok()); }, empty, "/v3/kv/put",
       R"({"key":"L3AvYQ==","value":"dg=="})"},
      {"put binary on a lease",
       [](EtcdKv& kv) {
         CHECK(kv.put("a",
                      std::string("\0\xff"
                                  "bin",
                                  5),
                      42)
                   .ok());
       },
       empty, "/v3/kv/put", R"({"key":"L3AvYQ==","value":"AP9iaW4=","lease":"42"})"},
      {"put an empty value", [](EtcdKv& kv) { CHECK(kv.put("a", "").ok()); }, empty, "/v3/kv/put",
       R"({"key":"L3AvYQ==","value":""})"},
      {"create", [](EtcdKv& kv) { CHECK(kv.create("a", "v", 7).value()); }, txn, "/v3/kv/txn",
       R"({"compare":[{"key":"L3AvYQ==","target":"CREATE","result":"EQUAL","create_revision":"0"}],)"
       R"("success":[{"request_put":{"key":"L3AvYQ==","value":"dg==","lease":"7"}}]})"},
      {"replace", [](EtcdKv& kv) { CHECK(kv.replace("a", 12, "v").value()); }, txn, "/v3/kv/txn",
       R"({"compare":[{"key":"L3AvYQ==","target":"MOD","result":"EQUAL","mod_revision":"12"}],)"
       R"("success":[{"request_put":{"key":"L3AvYQ==","value":"dg=="}}]})"},
      {"move", [](EtcdKv& kv) { CHECK(kv.move("from", 3, "to", "v").value()); }, txn, "/v3/kv/txn",
       R"({"compare":[{"key":"L3AvZnJvbQ==","target":"MOD","result":"EQUAL","mod_revision":"3"},)"
       R"({"key":"L3AvdG8=","target":"CREATE","result":"EQUAL","create_revision":"0"}],)"
       R"("success":[{"request_put":{"key":"L3AvdG8=","value":"dg=="}},)"
       R"({"request_delete_range":{"key":"L3AvZnJvbQ=="}}]})"},
      {"remove", [](EtcdKv& kv) { CHECK(kv.remove("a").ok()); }, empty, "/v3/kv/deleterange",
       R"({"key":"L3AvYQ=="})"},
      {"grant", [](EtcdKv& kv) { CHECK(kv.grant_lease(10).value() == 9155433539811099150); },
       ok("{" + kHeader + R"(,"ID":"9155433539811099150","TTL":"10"})"), "/v3/lease/grant",
       R"({"TTL":"10"})"},
      {"keep-alive", [](EtcdKv& kv) { CHECK(kv.keep_alive(9155433539811099150).ok()); },
       ok(R"({"result":{)" + kHeader + R"(,"ID":"9155433539811099150","TTL":"10"}})"),
       "/v3/lease/keepalive", R"({"ID":"9155433539811099150"})"},
      {"revoke", [](EtcdKv& kv) { CHECK(kv.revoke_lease(5).ok()); }, empty, "/v3/lease/revoke",
       R"({"ID":"5"})"},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    FakeGateway gw;
    gw.answer(r.answer);
    auto kv = client({gw.url()});
    r.op(*kv);
    auto reqs = gw.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].line == std::string("POST ") + r.path + " HTTP/1.0");
    CHECK(reqs[0].body == r.body);
  }
}

TEST_CASE("etcd answers: numbers as strings, omitted defaults, absent kvs", "[etcdkv]") {
  FakeGateway gw;
  auto kv = client({gw.url()});

  SECTION("get") {
    gw.answer(ok("{" + kHeader + R"(,"count":"0"})")); // no kvs: absent
    auto absent = kv->get("a");
    REQUIRE(absent.ok());
    CHECK_FALSE(*absent);

    gw.answer(ok("{" + kHeader +
                 R"(,"kvs":[{"key":"L3AvYQ==","create_revision":"2","mod_revision":"17",)"
                 R"("version":"3","value":"AP9iaW4="}],"count":"1"})"));
    auto e = kv->get("a");
    REQUIRE(e.ok());
    REQUIRE(*e);
    CHECK((*e)->key == "a");
    CHECK((*e)->value == std::string("\0\xff"
                                     "bin",
                                     5));
    CHECK((*e)->revision == 17);

    // An empty value is omitted (proto3), a plain number is read too, a missing one is 0.
    gw.answer(ok(R"({"kvs":[{"key":"L3AvYQ==","mod_revision":5}]})"));
    e = kv->get("a");
    REQUIRE((e.ok() && *e));
    CHECK((*e)->value.empty());
    CHECK((*e)->revision == 5);
    gw.answer(ok(R"({"kvs":[{"key":"L3AvYQ==","value":"dg=="}]})"));
    e = kv->get("a");
    REQUIRE((e.ok() && *e));
    CHECK((*e)->revision == 0);

    gw.answer(ok(R"({"kvs":[{"key":"L3AvYQ==","value":"not base64!"}]})"));
    e = kv->get("a");
    CHECK(e.kind() == ErrorKind::protocol);
  }

  SECTION("list pages through `more`, starting after the last key") {
    gw.answer(ok("{" + kHeader +
                 R"(,"kvs":[{"key":"L3AvYQ==","mod_revision":"4","value":"dg=="}],)"
                 R"("more":true,"count":"2"})"));
    gw.answer(ok("{" + kHeader + R"(,"kvs":[{"key":"L3AvYg==","mod_revision":"6"}],"count":"1"})"));
    auto all = kv->list("");
    REQUIRE(all.ok());
    REQUIRE(all->size() == 2);
    CHECK((*all)[0].key == "a");
    CHECK((*all)[0].value == "v");
    CHECK((*all)[0].revision == 4);
    CHECK((*all)[1].key == "b");
    CHECK((*all)[1].value.empty());
    CHECK((*all)[1].revision == 6);
    auto reqs = gw.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[1].body == R"({"key":"L3AvYQA=","range_end":"L3Aw","limit":"1000"})");
  }

  SECTION("list: no kvs is empty; a key outside the prefix is an error") {
    gw.answer(ok("{" + kHeader + "}"));
    auto none = kv->list("x");
    REQUIRE(none.ok());
    CHECK(none->empty());
    gw.answer(ok(R"({"kvs":[{"key":"L3Eveg==","value":"dg=="}]})"));
    CHECK(kv->list("").kind() == ErrorKind::protocol);
  }

  SECTION("remove, create, replace: deleted and succeeded, false when omitted") {
    gw.answer(ok("{" + kHeader + R"(,"deleted":"1"})"));
    CHECK(kv->remove("a").value());
    gw.answer(ok("{" + kHeader + "}"));
    CHECK_FALSE(kv->remove("a").value());
    gw.answer(ok("{" + kHeader + R"(,"responses":[{"response_range":{}}]})"));
    CHECK_FALSE(kv->create("a", "v").value());
    gw.answer(ok("{" + kHeader + R"(,"succeeded":true,"responses":[{"response_put":{}}]})"));
    CHECK(kv->create("a", "v").value());
    gw.answer(ok("{" + kHeader + "}"));
    CHECK_FALSE(kv->replace("a", 3, "v").value());
  }

  SECTION("leases") {
    gw.answer(ok("{" + kHeader + R"(,"TTL":"10"})"));
    auto no_id = kv->grant_lease(10);
    CHECK(no_id.kind() == ErrorKind::protocol);
    CHECK(no_id.message() == "etcd: a lease grant without an ID");
    // etcd answers a keep-alive of a lease it no longer has with no TTL.
    gw.answer(ok(R"({"result":{)" + kHeader + R"(,"ID":"7"}})"));
    Status ended = kv->keep_alive(7);
    CHECK(ended.kind() == ErrorKind::closed);
    CHECK(ended.message() == "etcd: lease 7 has ended");
    // Revoking a lease that has ended already is done; another etcd error is not.
    gw.answer(status(404, R"({"error":"etcdserver: requested lease not found",)"
                          R"("message":"etcdserver: requested lease not found","code":5})"));
    CHECK(kv->revoke_lease(7).ok());
    gw.answer(status(403, R"({"error":"etcdserver: permission denied",)"
                          R"("message":"etcdserver: permission denied","code":7})"));
    Status st = kv->revoke_lease(7);
    CHECK(st.kind() == ErrorKind::http_status);
    CHECK(st.message() ==
          "etcd " + gw.url() + ": etcdserver: permission denied (HTTP 403, code 7)");
  }
}

TEST_CASE("etcd errors: etcd's own text, naming the member; not retried", "[etcdkv]") {
  FakeGateway a, b;
  auto kv = client({a.url(), b.url()});
  struct Row {
    const char* name;
    std::string answer;
    ErrorKind kind;
    std::string message; // after "etcd <url>: "
    int64_t code;
  };
  const Row rows[] = {
      {"etcd's error body",
       status(400, R"({"error":"invalid character 'x' looking for beginning of value",)"
                   R"("message":"invalid character 'x' looking for beginning of value","code":3})"),
       ErrorKind::http_status,
       "invalid character 'x' looking for beginning of value (HTTP 400, code 3)", 3},
      {"only an error member", status(500, R"({"error":"etcdserver: corrupt cluster","code":15})"),
       ErrorKind::http_status, "etcdserver: corrupt cluster (HTTP 500, code 15)", 15},
      {"not JSON", status(502, "Bad Gateway"), ErrorKind::http_status,
       "HTTP 502 (HTTP 502, code 0)", 0},
      {"200 and not a JSON object", ok("[1]"), ErrorKind::protocol,
       "an answer that is not a JSON object", 0},
      {"200 and not JSON", ok("{\"kvs\":"), ErrorKind::protocol,
       "an answer that is not a JSON object", 0},
  };
  size_t asked = 0;
  for (const Row& r : rows) {
    INFO(r.name);
    a.answer(r.answer);
    int64_t code = -1;
    auto doc = kv->call("/v3/kv/range", "{}", &code);
    ++asked;
    CHECK(doc.kind() == r.kind);
    CHECK(doc.message() == "etcd " + a.url() + ": " + r.message);
    CHECK(code == r.code);
    CHECK(a.requests().size() == asked);
    CHECK(b.requests().empty()); // an answer from etcd is final
  }
}

TEST_CASE("etcd elections: a member that cannot serve now (gRPC Unavailable) is skipped, and "
          "the call made again within the timeout",
          "[etcdkv]") {
  const std::string no_leader = status(503, R"({"error":"etcdserver: no leader",)"
                                            R"("message":"etcdserver: no leader","code":14})");
  SECTION("the next member serves") {
    FakeGateway a, b;
    auto kv = client({a.url(), b.url()});
    a.answer(no_leader);
    b.answer(ok("{" + kHeader + R"(,"deleted":"1"})"));
    CHECK(kv->remove("k").value());
    CHECK(a.requests().size() == 1);
    CHECK(b.requests().size() == 1);
  }
  SECTION("no member serves yet; the second pass is served") {
    FakeGateway a, b;
    auto kv = client({a.url(), b.url()});
    a.answer(no_leader);
    b.answer(no_leader);
    a.answer(ok("{" + kHeader + R"(,"deleted":"1"})"));
    CHECK(kv->remove("k").value());
    CHECK(a.requests().size() == 2);
    CHECK(b.requests().size() == 1);
  }
  SECTION("an election, then an answer from another member: final, not made again") {
    FakeGateway a, b;
    auto kv = client({a.url(), b.url()});
    a.answer(no_leader);
    b.answer(status(400, R"({"error":"etcdserver: bad","code":3})"));
    int64_t code = 0;
    auto r = kv->call("/v3/kv/range", "{}", &code);
    CHECK(r.message() == "etcd " + b.url() + ": etcdserver: bad (HTTP 400, code 3)");
    CHECK(code == 3);
    CHECK(a.requests().size() == 1);
    CHECK(b.requests().size() == 1);
  }
  SECTION("no leader within the timeout: unreachable, each member saying why") {
    FakeGateway a;
    auto kv = client({a.url()}, 500);
    for (int i = 0; i < 20; ++i)
      a.answer(no_leader);
    auto r = kv->get("k");
    CHECK(r.kind() == ErrorKind::unreachable);
    CHECK(r.message() ==
          "etcd unreachable: " + a.url() + ": etcdserver: no leader (electing a leader)");
    // Asked again every 200 ms for two passes' worth, 2 x (dial 1000 + request 500 ms) = 3 s:
    // at most 3000 / 200 + 2 passes, never all 20.
    CHECK(a.requests().size() >= 2);
    CHECK(a.requests().size() <= 17);
  }
}

TEST_CASE("etcd failover: the next member on a connection failure, then stay there", "[etcdkv]") {
  SECTION("a dead member, then a good one") {
    FakeGateway good;
    const std::string dead = dead_url();
    auto kv = client({dead, good.url()});
    good.answer(ok("{" + kHeader + R"(,"deleted":"1"})"));
    good.answer(ok("{" + kHeader + R"(,"deleted":"1"})"));
    CHECK(kv->remove("a").value());
    CHECK(kv->remove("a").value());
    CHECK(good.requests().size() == 2);
  }

  SECTION("bytes that are not HTTP, or none in time, count as a member that failed") {
    FakeGateway garbage, silent, good;
    auto kv = client({garbage.url(), silent.url(), good.url()}, 300);
    garbage.answer("SSH-2.0-OpenSSH_9.2\r\n");
    silent.answer(""); // reads the request, answers nothing
    good.answer(ok("{" + kHeader + "}"));
    good.answer(ok("{" + kHeader + "}"));
    REQUIRE(kv->put("a", "v").ok());
    CHECK(garbage.requests().size() == 1);
    CHECK(silent.requests().size() == 1);
    CHECK(good.requests().size() == 1);
    // The next call starts at the member that answered last.
    REQUIRE(kv->put("a", "v").ok());
    CHECK(garbage.requests().size() == 1);
    CHECK(silent.requests().size() == 1);
    CHECK(good.requests().size() == 2);
  }

  SECTION("every member down: one error naming each, and why") {
    const std::string d1 = dead_url(), d2 = dead_url();
    FakeGateway silent;
    silent.answer("");
    auto kv = client({d1, d2, silent.url()}, 300);
    auto r = kv->get("a");
    CHECK(r.kind() == ErrorKind::unreachable);
    INFO(r.message());
    CHECK(r.message().starts_with("etcd unreachable: " + d1 + ": "));
    CHECK(r.message().find("; " + d2 + ": ") != std::string::npos);
    CHECK(r.message().find("; " + silent.url() + ": read timeout") != std::string::npos);
    CHECK(r.message().find("refused") != std::string::npos);
  }
}

TEST_CASE("etcd calls from several threads at once, each on its own loop", "[etcdkv]") {
  FakeGateway gw;
  constexpr int kThreads = 4, kCalls = 10;
  for (int i = 0; i < kThreads * kCalls; ++i)
    gw.answer(ok("{" + kHeader + "}"));
  auto kv = client({gw.url()});
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i)
        if (!kv->put("a", "v").ok()) ++failed;
    });
  for (auto& t : threads)
    t.join();
  CHECK(failed == 0);
  CHECK(gw.requests().size() == kThreads * kCalls);
}
