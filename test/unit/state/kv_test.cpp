// Tests for the dispatcher's state in a shared store (src/state/kv.cpp and the KV paths of the
// registry, locks, run store and pairing queue; tag [state]), on MemoryKv: the same semantics
// as etcd's (revisions, create-if-absent, leases), without a server. The etcd client itself is
// tested against a real etcd (test/e2e/etcd).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "state/idempotency.hpp"
#include "state/kv.hpp"
#include "state/locks.hpp"
#include "state/pairing_queue.hpp"
#include "state/registry.hpp"
#include "state/rotation.hpp"
#include "state/run_store.hpp"
#include "state/serials.hpp"
#include "testutil.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

using namespace cx;
using namespace cx::state;

namespace {
// Installs a MemoryKv for the test's life; the files under `dir` must stay untouched.
struct KvScope {
  std::shared_ptr<MemoryKv> kv = std::make_shared<MemoryKv>();
  test::TempDir dir;
  KvScope() { set_shared_kv(kv, KvSettings{1, 60}); }
  ~KvScope() { set_shared_kv(nullptr); }
  bool dir_empty() const { return list_dir(dir.path()).value().empty(); }
};

AgentRecord agent(const std::string& name) {
  AgentRecord r;
  r.hostname = name;
  r.ip = "10.0.0.1";
  r.port = 7450;
  return r;
}
} // namespace

TEST_CASE("MemoryKv: revisions, create-if-absent, replace, move and leases", "[state]") {
  MemoryKv kv;
  REQUIRE(kv.create("a", "1").value());
  CHECK_FALSE(kv.create("a", "2").value());
  auto a = kv.get("a").value();
  REQUIRE(a);
  CHECK(a->value == "1");
  CHECK_FALSE(kv.replace("a", a->revision + 1, "x").value());
  CHECK(kv.replace("a", a->revision, "3").value());
  CHECK(kv.get("a").value()->value == "3");
  CHECK(kv.replace("new", 0, "n").value());                 // revision 0: only while absent
  CHECK_FALSE(kv.move("a", a->revision, "b", "v").value()); // a changed since
  auto now = kv.get("a").value()->revision;
  CHECK_FALSE(kv.move("a", now, "new", "v").value()); // the target exists
  CHECK(kv.move("a", now, "b", "v").value());
  CHECK_FALSE(kv.get("a").value());
  int64_t lease = kv.grant_lease(5).value();
  REQUIRE(kv.put("leased/1", "x", lease).ok());
  REQUIRE(kv.put("leased/2", "y", lease).ok());
  CHECK(kv.list("leased/").value().size() == 2);
  kv.expire(lease);
  CHECK(kv.list("leased/").value().empty());
  CHECK(kv.keep_alive(lease).kind() == ErrorKind::closed);
  kv.set_unreachable(true);
  CHECK(kv.get("b").kind() == ErrorKind::unreachable);
}

TEST_CASE("the registry in the shared store: records, edits, renames, tags", "[state]") {
  KvScope s;
  Registry reg(s.dir / "agents");
  REQUIRE(reg.register_agent(agent("web1")).ok());
  REQUIRE(reg.register_agent(agent("db1")).ok());
  CHECK(s.kv->get("agents/web1").value());
  auto all = reg.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].hostname == "db1");
  CHECK(reg.list_hostnames() == std::vector<std::string>{"db1", "web1"});
  CHECK(reg.get("web1")->port == 7450);
  CHECK(reg.resolve_dispatch({"web1"}).hosts == std::vector<DispatchTarget>{{"web1", "web1:7450"}});

  REQUIRE(reg.update_tags("web1", {{"role", "web"}}).value());
  CHECK_FALSE(reg.update_tags("nobody", {{"role", "web"}}).value());
  auto tagged = reg.resolve_tags({{"role", "web"}});
  CHECK(tagged.refs == std::vector<std::string>{"web1"});
  CHECK(reg.bulk_update_tags({{"web1", {{"role", "web"}}}, {"db1", {{"role", "db"}}}}).value() ==
        1);

  AgentEdit rename;
  rename.rename = "db1";
  CHECK(reg.edit("web1", rename).message() == "agent 'db1' already exists");
  rename.rename = "web9";
  auto moved = reg.edit("web1", rename);
  REQUIRE(moved.ok());
  CHECK(moved->renamed_from == "web1");
  CHECK_FALSE(reg.get("web1"));
  CHECK(reg.get("web9")->tags == std::map<std::string, std::string>{{"role", "web"}});
  CHECK(reg.edit("ghost", AgentEdit{}).message() == "No registry entry for 'ghost'");

  REQUIRE(
      reg.update_serial("web9", SerialUpdate{std::string("ab12"), std::string("current"), {}, {}})
          .ok());
  CHECK(reg.get("web9")->dispatcher_serial == "ab12");
  CHECK(reg.remove("web9").value().hostname == "web9");
  CHECK(reg.remove("web9").message() == "No registry entry for 'web9'");
  CHECK(s.dir_empty()); // nothing went to the files

  s.kv->set_unreachable(true);
  CHECK(reg.register_agent(agent("x")).message().find("agent registry in memory") == 0);
  CHECK_FALSE(reg.list().ok());
}

TEST_CASE("locks in the shared store: all or none, per holder, gone with the lease", "[state]") {
  KvScope s;
  Locks locks(s.dir / "locks");
  auto a = locks.acquire({"web1", "web2"}, "deploy");
  REQUIRE(a.ok());
  CHECK(a.held.size() == 2);
  auto b = locks.acquire({"web2", "web3"}, "deploy");
  CHECK(b.conflicts == std::vector<std::string>{"web2:deploy"});
  CHECK_FALSE(s.kv->get("locks/web3--deploy.lock").value()); // none: web3 was given back
  CHECK(locks.check_available({"web1", "web3"}, "deploy") ==
        std::vector<std::string>{"web1:deploy"});
  CHECK(locks.list_held() == std::vector<HeldLock>{{"web1", "deploy"}, {"web2", "deploy"}});
  a.held.release();
  CHECK(locks.list_held().empty());
  CHECK(locks.acquire({"web2"}, "deploy").ok());
  CHECK(s.dir_empty());
}

TEST_CASE("a lock's lease is kept alive while held", "[state]") {
  KvScope s; // lock TTL 1 s: a keep-alive every 333 ms
  Locks locks(s.dir / "locks");
  auto a = locks.acquire({"web1"}, "deploy");
  REQUIRE(a.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  CHECK(locks.list_held().size() == 1);
  a.held.release();
  CHECK(locks.list_held().empty());
}

TEST_CASE("run records and pairing requests in the shared store", "[state]") {
  KvScope s;
  RunStore runs(s.dir / "runs");
  auto doc = json::parse(R"({"reqid":"00aa","status":"complete"})");
  REQUIRE(runs.save("00aa", *doc).ok());
  auto back = runs.load("00aa");
  REQUIRE(back);
  CHECK(json::to_string(*back) == R"({"reqid":"00aa","status":"complete"})");
  CHECK_FALSE(runs.load("00bb"));
  CHECK(runs.purge(1 << 30) == 0); // leases do that

  ApiInstanceLock me;
  REQUIRE(me.acquire(runs.dir()).ok());
  CHECK(api_instance_alive(runs.dir(), me.id()));
  CHECK_FALSE(api_instance_alive(runs.dir(), "0123456789abcdef"));

  PairingQueue q(s.dir / "pairing");
  PairingRequest r;
  r.id = q.new_id();
  r.hostname = "web1";
  r.csr = "csr";
  r.received = "2026-12-06T00:00:00Z";
  r.code = "123456";
  REQUIRE(q.add(r).ok());
  CHECK(q.pending_count() == 1);
  CHECK(q.list(0).size() == 1);
  CHECK(q.poll(r.id).answer == PairingAnswer::none);
  REQUIRE(q.write_approved(r.id, "{\"ok\":1}").ok());
  auto p = q.poll(r.id);
  CHECK(p.answer == PairingAnswer::approved);
  CHECK(p.body == "{\"ok\":1}");
  q.finish(r.id, PairingAnswer::approved);
  CHECK(q.pending_count() == 0);
  CHECK(q.poll(r.id).answer == PairingAnswer::none);
  CHECK(s.dir_empty());
}

TEST_CASE("a store that cannot be read is an error, never an unknown agent", "[state]") {
  KvScope s;
  Registry reg(s.dir / "agents");
  REQUIRE(reg.register_agent(agent("web1")).ok());
  s.kv->set_unreachable(true);
  auto res = reg.resolve_dispatch({"web1"});
  CHECK_FALSE(res.ok);
  CHECK(res.unknown.empty());
  CHECK(res.error.find("agent registry in memory") == 0);
  auto tagged = reg.resolve_tags({{"role", "web"}});
  CHECK_FALSE(tagged.ok);
  CHECK_FALSE(tagged.error.empty());
  s.kv->set_unreachable(false);
  CHECK(reg.resolve_dispatch({"web1"}).ok); // and back when the store is
}

TEST_CASE("certificate serials are claimed once in the shared store", "[state]") {
  CHECK(claim_serial("ab01").value()); // the files: every claim succeeds
  KvScope s;
  CHECK(claim_serial("ab01").value());
  CHECK_FALSE(claim_serial("ab01").value()); // another dispatcher drew the same
  CHECK(claim_serial("cd02").value());
  CHECK(s.kv->get("ca/serial").value()->value == "cd02");
  // Racing claimants: each serial goes to exactly one.
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (claim_serial("ff" + std::to_string(i)).value()) ++won;
    });
  for (auto& t : threads)
    t.join();
  CHECK(won == 50);
}

TEST_CASE("Idempotency-Key entries in the shared store: one claim wins, the answer is kept",
          "[state]") {
  KvScope s;
  IdempotencyIndex index(s.dir / "runs");
  IdempotencyEntry e{"k1", "scope1", "00aa", false, "{}", {}, {}};
  CHECK(index.claim(e, 0).value());
  IdempotencyEntry other = e;
  other.reqid = "00bb";
  CHECK_FALSE(index.claim(other, 0).value()); // another request (of any instance) lost
  e.code = 200;
  e.answer = "{\"ok\":true}";
  REQUIRE(index.record_answer(e).ok());
  auto found = index.find("scope1", "k1", 0);
  REQUIRE(found);
  CHECK(found->answer == e.answer);
  CHECK_FALSE(index.record_answer(other).ok()); // not its run
  index.forget(other);                          // not its run: kept
  CHECK(index.find("scope1", "k1", 0));
  index.forget(e);
  CHECK_FALSE(index.find("scope1", "k1", 0));
  CHECK(s.dir_empty());
}

TEST_CASE("the rotation state in the shared store", "[state]") {
  KvScope s;
  std::string file = s.dir / "rotation.json";
  CHECK_FALSE(load_rotation(file).value());
  RotationState r;
  r.current_serial = "ab12";
  r.previous_serial = "cd34";
  r.rotated_at = "2026-12-06T00:00:00Z";
  r.overlap_expires = "2027-01-05T00:00:00Z";
  REQUIRE(save_rotation(file, r).ok());
  CHECK(load_rotation(file).value() == r);
  CHECK(s.dir_empty());
  s.kv->set_unreachable(true);
  CHECK(load_rotation(file).message().find("rotation state in memory") == 0);
}
