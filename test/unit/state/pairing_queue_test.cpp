// Tests for src/state/pairing_queue.cpp (tag [state]): the request file format, ids, stale
// expiry, listing order and the approve/deny/poll/finish file protocol (dispatcher §3.2).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <utime.h>

#include "base/files.hpp"
#include "base/time.hpp"
#include "state/pairing_queue.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

PairingRequest make_request(const std::string& id, const std::string& received) {
  PairingRequest r;
  r.id = id;
  r.hostname = "web-" + id.substr(0, 4);
  r.ip = "10.0.0.5";
  r.source_ip = "10.0.0.5";
  r.csr = "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n";
  r.nonce = "00112233445566778899aabbccddeeff";
  r.lookup_by = "ip";
  r.port = 7450;
  r.received = received;
  r.code = "609527";
  r.reverse_dns = "localhost";
  r.reverse_confirmed = 1;
  return r;
}

void age(const std::string& path, int64_t seconds) {
  struct utimbuf t;
  t.actime = t.modtime = static_cast<time_t>(unix_now() - seconds);
  REQUIRE(::utime(path.c_str(), &t) == 0);
}

} // namespace

TEST_CASE("pairing queue: ids", "[state]") {
  struct Row {
    const char* id;
    bool ok;
  };
  const Row rows[] = {
      {"0123456789abcdef", true}, {"a", true},     {"", false},
      {"ABCDEF", false},          {"../x", false}, {"12g4", false},
      {"00c9845e0001", true},
  };
  for (const auto& r : rows) {
    INFO(r.id);
    CHECK(is_queue_id(r.id) == r.ok);
  }
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  for (int i = 0; i < 20; ++i) {
    std::string id = q.new_id();
    CHECK(id.size() == 16);
    CHECK(is_queue_id(id));
  }
}

TEST_CASE("pairing queue: the request file has every field of 3.2", "[state]") {
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  PairingRequest r = make_request("0123456789abcdef", "2026-11-25T04:17:27Z");
  REQUIRE(q.add(r).ok());
  CHECK(test::slurp(q.request_path(r.id)) ==
        "{\"id\":\"0123456789abcdef\",\"hostname\":\"web-0123\",\"ip\":\"10.0.0.5\","
        "\"source_ip\":\"10.0.0.5\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----\\nAA==\\n"
        "-----END CERTIFICATE REQUEST-----\\n\",\"nonce\":\"00112233445566778899aabbccddeeff\","
        "\"lookup_by\":\"ip\",\"port\":7450,\"received\":\"2026-11-25T04:17:27Z\","
        "\"code\":\"609527\",\"reverse_dns\":\"localhost\",\"reverse_confirmed\":1}\n");
  struct stat st;
  REQUIRE(::stat(q.request_path(r.id).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);

  auto back = q.get(r.id);
  REQUIRE(back);
  CHECK(pairing_request_json(*back) == pairing_request_json(r));

  // Null optionals are written as null and read back as absent.
  r.id = "fedcba9876543210";
  r.lookup_by.reset();
  r.port.reset();
  r.nonce.reset();
  REQUIRE(q.add(r).ok());
  CHECK(test::slurp(q.request_path(r.id)).find("\"nonce\":null,\"lookup_by\":null,\"port\":null") !=
        std::string::npos);
  back = q.get(r.id);
  REQUIRE(back);
  CHECK_FALSE(back->lookup_by);
  CHECK_FALSE(back->port);
  CHECK_FALSE(back->nonce);

  CHECK_FALSE(q.get("../../etc/passwd"));
  CHECK_FALSE(q.get("0000000000000000"));
  r.id = "../x";
  CHECK_FALSE(q.add(r).ok());
}

TEST_CASE("pairing queue: list is sorted by received and skips foreign files", "[state]") {
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  CHECK(q.list(unix_now()).empty()); // no directory yet
  REQUIRE(q.add(make_request("cccc", "2026-01-03T00:00:00Z")).ok());
  REQUIRE(q.add(make_request("aaaa", "2026-01-02T00:00:00Z")).ok());
  REQUIRE(q.add(make_request("bbbb", "2026-01-01T00:00:00Z")).ok());
  REQUIRE(write_file_atomic(q.dir() + "/NOTHEX.json", "{}").ok());
  REQUIRE(write_file_atomic(q.dir() + "/dddd.json", "{corrupt").ok());
  auto all = q.list(unix_now());
  REQUIRE(all.size() == 3);
  CHECK(all[0].id == "bbbb");
  CHECK(all[1].id == "aaaa");
  CHECK(all[2].id == "cccc");
  CHECK(q.pending_count() == 5); // the depth check counts every *.json
}

TEST_CASE("pairing queue: a request is known by its file name, whatever id it claims", "[state]") {
  // Found by the state_files fuzz target: get() and list() returned the file's "id" member, so
  // a file planted as aaaa.json could be shown, approved and answered as request bbbb.
  struct Row {
    const char* body;
  };
  const Row rows[] = {
      {R"({"id":"bbbb","hostname":"web","received":"2026-01-01T00:00:00Z"})"},
      {R"({"id":"../../etc/x","hostname":"web"})"},
      {R"({"id":5,"hostname":"web"})"},
      {R"({"id":"","hostname":"web"})"},
      {R"({"hostname":"web"})"},
  };
  for (const auto& row : rows) {
    INFO(row.body);
    test::TempDir tmp;
    PairingQueue q(tmp / "pairing");
    REQUIRE(make_dirs(q.dir()).ok());
    REQUIRE(write_file_atomic(q.request_path("aaaa"), row.body).ok());
    auto got = q.get("aaaa");
    REQUIRE(got);
    CHECK(got->id == "aaaa");
    CHECK(got->hostname == "web");
    auto all = q.list(unix_now());
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == "aaaa");
  }
}

TEST_CASE("pairing queue: stale expiry", "[state]") {
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  for (const char* id : {"a1", "a2", "a3", "a4", "a5"})
    REQUIRE(q.add(make_request(id, "2026-01-01T00:00:00Z")).ok());
  age(q.request_path("a1"), 700); // stale, unanswered: removed
  age(q.request_path("a2"), 500); // young: kept
  age(q.request_path("a3"), 700); // stale but approved (answer young): kept
  REQUIRE(q.write_approved("a3", "{}").ok());
  age(q.request_path("a4"), 700); // approved long ago: the answer and request go
  REQUIRE(q.write_approved("a4", "{}").ok());
  age(q.approved_path("a4"), 700);
  REQUIRE(write_file_atomic(q.denied_path("a6"), "{}").ok()); // orphan denial, old
  age(q.denied_path("a6"), 700);

  CHECK(q.expire_stale(unix_now()) == 2);
  CHECK_FALSE(path_exists(q.request_path("a1")));
  CHECK(path_exists(q.request_path("a2")));
  CHECK(path_exists(q.request_path("a3")));
  CHECK(path_exists(q.approved_path("a3")));
  CHECK_FALSE(path_exists(q.request_path("a4")));
  CHECK_FALSE(path_exists(q.approved_path("a4")));
  CHECK_FALSE(path_exists(q.denied_path("a6")));
  CHECK(path_exists(q.request_path("a5")));
  CHECK(q.pending_count() == 3);
}

TEST_CASE("pairing queue: approve, deny, poll and finish", "[state]") {
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  REQUIRE(q.add(make_request("abc1", "2026-01-01T00:00:00Z")).ok());
  REQUIRE(q.add(make_request("abc2", "2026-01-01T00:00:00Z")).ok());
  REQUIRE(q.add(make_request("abc3", "2026-01-01T00:00:00Z")).ok());

  CHECK(q.poll("abc1").answer == PairingAnswer::none);
  REQUIRE(q.write_approved("abc1", R"({"status":"approved"})").ok());
  auto p = q.poll("abc1");
  CHECK(p.answer == PairingAnswer::approved);
  CHECK(p.body == R"({"status":"approved"})");
  q.finish("abc1", PairingAnswer::approved);
  CHECK_FALSE(path_exists(q.approved_path("abc1")));
  CHECK_FALSE(path_exists(q.request_path("abc1")));

  REQUIRE(q.write_denied("abc2", R"({"status":"denied","reason":"rejected by operator"})").ok());
  CHECK_FALSE(path_exists(q.request_path("abc2"))); // deny unlinks the request at once
  p = q.poll("abc2");
  CHECK(p.answer == PairingAnswer::denied);
  CHECK(p.body == R"({"status":"denied","reason":"rejected by operator"})");
  q.finish("abc2", PairingAnswer::denied);
  CHECK_FALSE(path_exists(q.denied_path("abc2")));

  q.finish("abc3", PairingAnswer::none); // the timeout
  CHECK_FALSE(path_exists(q.request_path("abc3")));

  CHECK_FALSE(q.write_approved("../x", "{}").ok());
  CHECK_FALSE(q.write_denied("../x", "{}").ok());
}

TEST_CASE("pairing queue: links planted as requests or answers are not followed", "[state]") {
  // The queue directory is group-writable and pairing mode runs as root: a linked answer
  // would be sent to the waiting agent (the CA key, say), a linked request listed.
  test::TempDir tmp;
  PairingQueue q(tmp / "pairing");
  REQUIRE(q.add(make_request("abc1", "2026-01-01T00:00:00Z")).ok());
  REQUIRE(q.add(make_request("abc2", "2026-01-01T00:00:00Z")).ok());
  const std::string secret = tmp / "ca.key";
  REQUIRE(write_file_atomic(secret, "-----BEGIN PRIVATE KEY-----", {.mode = 0600}).ok());
  REQUIRE(::symlink(secret.c_str(), q.approved_path("abc1").c_str()) == 0);
  REQUIRE(::mkfifo(q.denied_path("abc2").c_str(), 0600) == 0);
  CHECK(q.poll("abc1").answer == PairingAnswer::none);
  CHECK(q.poll("abc2").answer == PairingAnswer::none); // and does not block
  // A request linked to a request file outside the queue.
  const std::string outside = tmp / "outside.json";
  REQUIRE(write_file_atomic(outside, test::slurp(q.request_path("abc1"))).ok());
  REQUIRE(::symlink(outside.c_str(), q.request_path("abc3").c_str()) == 0);
  CHECK_FALSE(q.get("abc3"));
  auto all = q.list(unix_now());
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "abc1");
  CHECK(all[1].id == "abc2");
}
