// Tests for src/state/registry.cpp (tag [state]): records, names, resolution, edits, serial
// updates and tag filters (dispatcher-and-api §3.1; acceptance rows 22-24 of §12).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/registry.hpp"
#include "testutil.hpp"

using namespace cx;
using namespace cx::state;

namespace {

AgentRecord make_record(const std::string& name, const std::string& ip = "",
                        const std::string& lookup_by = "hostname", int port = 7443) {
  AgentRecord r;
  r.hostname = name;
  r.ip = ip;
  r.paired = "2026-11-25T04:17:27Z";
  r.expiry = "Feb 27 04:17:27 2029 GMT";
  r.reqid = "54f730cdc9e94690";
  r.lookup_by = lookup_by;
  r.port = port;
  r.dispatcher_serial = "7f3a9c";
  r.serial_status = "current";
  r.serial_confirmed = "2026-11-25T04:17:27Z";
  return r;
}

void put_file(const test::TempDir& dir, const std::string& name, const std::string& text) {
  REQUIRE(make_dirs(dir / "agents").ok());
  REQUIRE(write_file_atomic(dir / ("agents/" + name), text).ok());
}

} // namespace

TEST_CASE("registry: register, overwrite, get and list", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  CHECK(reg.list()->empty()); // missing directory: empty registry
  CHECK_FALSE(reg.get("web-01"));

  REQUIRE(reg.register_agent(make_record("web-02", "10.0.0.2")).ok());
  REQUIRE(reg.register_agent(make_record("db-01", "10.0.0.9")).ok());
  auto got = reg.get("web-02");
  REQUIRE(got);
  CHECK(*got == make_record("web-02", "10.0.0.2"));

  // Overwrite replaces the whole record.
  REQUIRE(reg.register_agent(make_record("web-02", "10.0.0.3", "ip", 7450)).ok());
  got = reg.get("web-02");
  REQUIRE(got);
  CHECK(got->ip == "10.0.0.3");
  CHECK(got->lookup_by == "ip");
  CHECK(got->port == 7450);

  auto all = reg.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].hostname == "db-01");
  CHECK((*all)[1].hostname == "web-02");

  // Files are 0644 and end in a newline; the lock file exists after a write.
  struct stat st;
  REQUIRE(::stat(reg.record_path("web-02").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  CHECK(path_exists(reg.lock_path()));
  // The directory is created 2770 (setgid, group-shared) when the registry makes it.
  REQUIRE(::stat(reg.dir().c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02770);
}

TEST_CASE("registry: a record that is not a regular file is not read", "[state]") {
  // The registry directory is group-writable and root updates records it reads.
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web-01", "10.0.0.1")).ok());
  REQUIRE(::symlink(reg.record_path("web-01").c_str(), reg.record_path("web-02").c_str()) == 0);
  REQUIRE(::mkfifo(reg.record_path("web-03").c_str(), 0600) == 0);
  CHECK(reg.get("web-01"));
  CHECK_FALSE(reg.get("web-02"));
  CHECK_FALSE(reg.get("web-03")); // and does not block
  auto all = reg.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK((*all)[0].hostname == "web-01");
}

TEST_CASE("registry: the record on disk has every field of 3.1 in order", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  AgentRecord r = make_record("vm", "127.0.0.1");
  r.tags = {{"env", "prod"}};
  REQUIRE(reg.register_agent(r).ok());
  CHECK(test::slurp(reg.record_path("vm")) ==
        "{\"hostname\":\"vm\",\"ip\":\"127.0.0.1\",\"paired\":\"2026-11-25T04:17:27Z\","
        "\"expiry\":\"Feb 27 04:17:27 2029 GMT\",\"reqid\":\"54f730cdc9e94690\","
        "\"lookup_by\":\"hostname\",\"port\":7443,\"tags\":{\"env\":\"prod\"},"
        "\"dispatcher_serial\":\"7f3a9c\",\"serial_status\":\"current\","
        "\"serial_broadcast\":\"\",\"serial_confirmed\":\"2026-11-25T04:17:27Z\"}\n");
}

TEST_CASE("registry: defaults and normalisation when reading records", "[state]") {
  struct Row {
    const char* json;
    const char* lookup_by;
    int port;
    const char* serial_status;
  };
  const Row rows[] = {
      {R"({"hostname":"a"})", "hostname", 7443, "unknown"},
      {R"({"hostname":"a","lookup_by":"ip","port":7450})", "ip", 7450, "unknown"},
      {R"({"hostname":"a","lookup_by":"IP","port":0})", "hostname", 7443, "unknown"},
      {R"({"hostname":"a","lookup_by":"dns","port":70000})", "hostname", 7443, "unknown"},
      {R"({"hostname":"a","port":"7460"})", "hostname", 7460, "unknown"},
      {R"({"hostname":"a","port":"x","serial_status":"stale"})", "hostname", 7443, "stale"},
      {R"({"hostname":"a","port":-1,"serial_status":""})", "hostname", 7443, "unknown"},
      {R"({"hostname":"a","lookup_by":null,"port":null})", "hostname", 7443, "unknown"},
  };
  for (const auto& row : rows) {
    INFO(row.json);
    auto rec = parse_agent_record(row.json, "a");
    REQUIRE(rec.ok());
    CHECK(rec->lookup_by == row.lookup_by);
    CHECK(rec->port == row.port);
    CHECK(rec->serial_status == row.serial_status);
    CHECK(rec->tags.empty());
    CHECK(rec->ip.empty());
    CHECK(rec->dispatcher_serial.empty());
    CHECK(rec->serial_broadcast.empty());
    CHECK(rec->serial_confirmed.empty());
  }
  // The file name fills a missing hostname; unknown members survive a rewrite.
  auto rec = parse_agent_record(R"({"ip":"10.1.1.1","note":{"x":[1,2]}})", "web-09");
  REQUIRE(rec.ok());
  CHECK(rec->hostname == "web-09");
  REQUIRE(rec->extra.size() == 1);
  CHECK(agent_record_json(*rec).find(R"("note":{"x":[1,2]})") != std::string::npos);
  // Not an object, or not JSON: an error naming the file.
  CHECK(parse_agent_record("[1]", "x").message() == "x.json: not a JSON object");
  CHECK(parse_agent_record("{", "x").message().rfind("x.json: invalid JSON", 0) == 0);
}

TEST_CASE("registry: name validity guards every path", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  const std::string too_long(240, 'a');
  const char* bad[] = {"../etc", "a/b", ".hidden", "", "-lead", "a b", "x:1", too_long.c_str()};
  for (const char* name : bad) {
    INFO("name '" << name << "'");
    CHECK(reg.register_agent(make_record(name)).message() ==
          "invalid hostname '" + std::string(name) + "' - refusing to use as a registry key");
    CHECK_FALSE(reg.get(name));
    CHECK(reg.remove(name).message() == "No registry entry for '" + std::string(name) + "'");
  }
  // The longest name still fits a file name, with the atomic write's temporary twin.
  const std::string longest(cx::kMaxAgentNameLength, 'b');
  const char* good[] = {"a", "web-01", "web_01.example.com", "9x", "A.b-c_d", longest.c_str()};
  for (const char* name : good) {
    INFO("name '" << name << "'");
    CHECK(reg.register_agent(make_record(name)).ok());
    CHECK(reg.get(name));
  }
}

TEST_CASE("registry: corrupt files are skipped by list, counted by list_hostnames", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("good")).ok());
  put_file(tmp, "broken.json", "{not json");
  put_file(tmp, "notes.txt", "ignored");
  put_file(tmp, ".json", "{}");
  auto all = reg.list();
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK((*all)[0].hostname == "good");
  CHECK(reg.list_hostnames() == std::vector<std::string>{"broken", "good"});
  CHECK_FALSE(reg.get("broken"));
}

TEST_CASE("registry: list sorts by the hostname field", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  for (const char* n : {"zeta", "alpha", "Mid", "beta"})
    REQUIRE(reg.register_agent(make_record(n)).ok());
  std::vector<std::string> names;
  auto all = reg.list();
  REQUIRE(all.ok());
  for (const auto& r : *all)
    names.push_back(r.hostname);
  CHECK(names == std::vector<std::string>{"Mid", "alpha", "beta", "zeta"});
  CHECK(reg.list_hostnames() == names);
}

TEST_CASE("registry: remove returns the record and errors for an unknown name", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web-01", "10.0.0.1")).ok());
  auto gone = reg.remove("web-01");
  REQUIRE(gone.ok());
  CHECK(gone->ip == "10.0.0.1");
  CHECK(gone->expiry == "Feb 27 04:17:27 2029 GMT");
  CHECK_FALSE(path_exists(reg.record_path("web-01")));
  CHECK(reg.remove("web-01").message() == "No registry entry for 'web-01'");
  // A corrupt record can still be removed.
  put_file(tmp, "junk.json", "garbage");
  CHECK(reg.remove("junk").ok());
  CHECK_FALSE(path_exists(reg.record_path("junk")));
}

TEST_CASE("registry: resolve_dispatch (acceptance row 22)", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("by-ip", "10.0.0.5", "ip")).ok());
  REQUIRE(reg.register_agent(make_record("by-name", "10.0.0.6", "hostname")).ok());
  REQUIRE(reg.register_agent(make_record("odd-port", "10.0.0.7", "ip", 7450)).ok());
  REQUIRE(reg.register_agent(make_record("ip-empty", "", "ip")).ok());

  struct Row {
    std::vector<std::string> refs;
    bool ok;
    std::vector<DispatchTarget> hosts;
    std::vector<std::string> unknown;
  };
  const Row rows[] = {
      {{"by-ip"}, true, {{"by-ip", "10.0.0.5"}}, {}},
      {{"by-name"}, true, {{"by-name", "by-name"}}, {}},
      {{"odd-port"}, true, {{"odd-port", "10.0.0.7:7450"}}, {}},
      {{"by-name:7460"}, true, {{"by-name", "by-name:7460"}}, {}},
      {{"odd-port:7443"}, true, {{"odd-port", "10.0.0.7"}}, {}},
      {{"by-ip:99999"}, true, {{"by-ip", "10.0.0.5"}}, {}}, // invalid override -> 7443
      {{"ip-empty"}, true, {{"ip-empty", "ip-empty"}}, {}}, // lookup_by=ip without an ip
      {{"nope"}, false, {}, {"nope"}},
      {{"by-ip", "nope:7450", "by-name"}, false, {}, {"nope:7450"}},
      {{"../etc", "by-ip"}, false, {}, {"../etc"}},
      {{"by-ip:abc"}, false, {}, {"by-ip:abc"}},
      {{"by-ip", "by-name"}, true, {{"by-ip", "10.0.0.5"}, {"by-name", "by-name"}}, {}},
      // A host named twice is one host, in first-seen order (issue 11, defect 4); the same
      // name with another port is another target.
      {{"by-name", "by-ip", "by-name", "by-ip", "by-name"},
       true,
       {{"by-name", "by-name"}, {"by-ip", "10.0.0.5"}},
       {}},
      {{"by-ip", "by-ip:7443", "by-ip:7450"},
       true,
       {{"by-ip", "10.0.0.5"}, {"by-ip", "10.0.0.5:7450"}},
       {}},
  };
  for (const auto& row : rows) {
    INFO("refs[0] = " << row.refs[0] << " (" << row.refs.size() << " refs)");
    auto res = reg.resolve_dispatch(row.refs);
    CHECK(res.ok == row.ok);
    CHECK(res.hosts == row.hosts);
    CHECK(res.unknown == row.unknown);
  }
  // The references kept are the ones first given for each host, as written.
  auto res = reg.resolve_dispatch({"by-ip:7443", "by-name", "by-ip", "by-name:7460"});
  CHECK(res.refs == std::vector<std::string>{"by-ip:7443", "by-name", "by-name:7460"});
  CHECK(reg.resolve_dispatch({"by-ip", "nope"}).refs.empty());
}

TEST_CASE("registry: resolve_target passes unknown names through", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web", "10.0.0.5", "ip")).ok());
  REQUIRE(reg.register_agent(make_record("db")).ok());
  struct Row {
    const char* ref;
    const char* target;
  };
  const Row rows[] = {
      {"web", "10.0.0.5"}, {"web:7450", "10.0.0.5:7450"}, {"db", "db"}, {"db:7450", "db:7450"},
      {"ghost", "ghost"},  {"ghost:7450", "ghost:7450"},
  };
  for (const auto& r : rows) {
    INFO(r.ref);
    CHECK(reg.resolve_target(r.ref) == r.target);
  }
}

TEST_CASE("registry: edit-agent field edits and renames", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web", "10.0.0.5")).ok());
  REQUIRE(reg.register_agent(make_record("db")).ok());

  AgentEdit e;
  e.ip = "192.168.1.9";
  e.port = 7450;
  e.lookup_by = "ip";
  auto r = reg.edit("web", e);
  REQUIRE(r.ok());
  CHECK(r->renamed_from.empty());
  CHECK(r->record.ip == "192.168.1.9");
  CHECK(r->record.port == 7450);
  CHECK(r->record.lookup_by == "ip");
  CHECK(r->record.dispatcher_serial == "7f3a9c"); // serial kept
  CHECK(*reg.get("web") == r->record);

  AgentEdit norm;
  norm.port = 0;
  norm.lookup_by = "bogus";
  r = reg.edit("web", norm);
  REQUIRE(r.ok());
  CHECK(r->record.port == 7443);
  CHECK(r->record.lookup_by == "hostname");

  AgentEdit ren;
  ren.rename = "web-renamed";
  r = reg.edit("web", ren);
  REQUIRE(r.ok());
  CHECK(r->renamed_from == "web");
  CHECK(r->record.hostname == "web-renamed");
  CHECK_FALSE(path_exists(reg.record_path("web")));
  auto moved = reg.get("web-renamed");
  REQUIRE(moved);
  CHECK(moved->ip == "192.168.1.9");
  CHECK(moved->dispatcher_serial == "7f3a9c");

  struct Bad {
    const char* name;
    const char* rename;
    const char* message;
  };
  const Bad bad[] = {
      {"missing", "x", "No registry entry for 'missing'"},
      {"web-renamed", "db", "agent 'db' already exists"},
      {"web-renamed", "../x", "invalid agent name '../x' (use letters, digits, '.', '-', '_')"},
      {"web-renamed", "", "invalid agent name '' (use letters, digits, '.', '-', '_')"},
  };
  for (const auto& b : bad) {
    INFO(b.name << " -> " << b.rename);
    AgentEdit x;
    x.rename = b.rename;
    CHECK(reg.edit(b.name, x).message() == b.message);
  }
  CHECK(reg.get("web-renamed")); // failed renames change nothing
  CHECK(reg.get("db"));
}

TEST_CASE("registry: expiry and tags updates keep the other fields", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web", "10.0.0.5")).ok());
  auto u = reg.update_expiry("web", "Jan  1 00:00:00 2030 GMT");
  REQUIRE(u.ok());
  CHECK(*u);
  AgentRecord want = make_record("web", "10.0.0.5");
  want.expiry = "Jan  1 00:00:00 2030 GMT";
  CHECK(*reg.get("web") == want);

  CHECK(reg.get("web")->tags.empty()); // tags default to {}
  u = reg.update_tags("web", {{"env", "prod"}, {"role", "db"}});
  REQUIRE(u.ok());
  CHECK(*u);
  want.tags = {{"env", "prod"}, {"role", "db"}};
  CHECK(*reg.get("web") == want);

  // An unknown agent: 0, and nothing is created.
  CHECK_FALSE(*reg.update_expiry("ghost", "x"));
  CHECK_FALSE(*reg.update_tags("ghost", {{"a", "b"}}));
  CHECK_FALSE(path_exists(reg.record_path("ghost")));
}

TEST_CASE("registry: serial fields merge, create minimal records, bulk (row 24)", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web", "10.0.0.5")).ok());

  SerialUpdate u;
  u.serial_status = "pending";
  u.serial_broadcast = "2027-01-01T00:00:00Z";
  REQUIRE(reg.update_serial("web", u).ok());
  auto rec = reg.get("web");
  REQUIRE(rec);
  CHECK(rec->serial_status == "pending");
  CHECK(rec->serial_broadcast == "2027-01-01T00:00:00Z");
  CHECK(rec->dispatcher_serial == "7f3a9c");              // omitted: not overwritten
  CHECK(rec->serial_confirmed == "2026-11-25T04:17:27Z"); // omitted: not overwritten
  CHECK(rec->ip == "10.0.0.5");

  // An absent agent gets a created record with defaults.
  SerialUpdate s;
  s.serial_status = "stale";
  REQUIRE(reg.update_serial("gone", s).ok());
  rec = reg.get("gone");
  REQUIRE(rec);
  CHECK(rec->hostname == "gone");
  CHECK(rec->serial_status == "stale");
  CHECK(rec->port == 7443);
  CHECK(rec->lookup_by == "hostname");
  CHECK(rec->dispatcher_serial.empty());
  CHECK(reg.update_serial("../x", s).message() ==
        "invalid hostname '../x' - refusing to use as a registry key");

  // Bulk: applies N, creates missing records, skips invalid names.
  SerialUpdate c;
  c.serial_status = "current";
  c.dispatcher_serial = "abc123";
  auto n = reg.bulk_update_serial({{"web", c}, {"new-one", c}, {"../bad", c}});
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(reg.get("web")->dispatcher_serial == "abc123");
  CHECK(reg.get("web")->ip == "10.0.0.5");
  CHECK(reg.get("new-one")->serial_status == "current");

  // An empty bulk list touches nothing, not even the lock file.
  test::TempDir other;
  Registry empty(other / "agents");
  auto zero = empty.bulk_update_serial({});
  REQUIRE(zero.ok());
  CHECK(*zero == 0);
  CHECK_FALSE(path_exists(empty.dir()));
}

TEST_CASE("registry: an update rewrites the named file, whatever hostname the file holds",
          "[state]") {
  // Found by the state_files fuzz target: updates wrote to record_path(<hostname member>), so a
  // planted "web.json" holding {"hostname":"../../x"} made a dispatcher write outside the
  // registry (or over another agent's record).
  struct Row {
    const char* hostname_member;
  };
  const Row rows[] = {{"other"}, {"../outside"}, {"../../etc/cron.d/x"}, {"a/b"}, {""}};
  for (const auto& row : rows) {
    INFO(row.hostname_member);
    test::TempDir tmp;
    Registry reg(tmp / "agents");
    put_file(tmp, "web.json", std::string("{\"hostname\":\"") + row.hostname_member + "\"}");
    auto u = reg.update_expiry("web", "Jan  1 00:00:00 2030 GMT");
    REQUIRE(u.ok());
    CHECK(*u);
    REQUIRE(reg.update_tags("web", {{"env", "prod"}}).ok());
    SerialUpdate s;
    s.serial_status = "pending";
    REQUIRE(reg.update_serial("web", s).ok());
    REQUIRE(reg.bulk_update_serial({{"web", s}}).ok());
    auto names = list_dir(tmp / "agents");
    REQUIRE(names.ok());
    CHECK(*names == std::vector<std::string>{".registry.lock", "web.json"});
    CHECK(*list_dir(tmp.path()) == std::vector<std::string>{"agents"});
    auto rec = reg.get("web");
    REQUIRE(rec);
    CHECK(rec->expiry == "Jan  1 00:00:00 2030 GMT");
    CHECK(rec->tags.at("env") == "prod");
    CHECK(rec->serial_status == "pending");
  }
}

TEST_CASE("registry: a held registry lock serialises writers", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  REQUIRE(reg.register_agent(make_record("web")).ok());
  FileLock held;
  REQUIRE(held.lock(reg.lock_path(), true).ok());
  // Another process would block; here a non-blocking probe shows the lock is the one used.
  FileLock probe;
  CHECK_FALSE(probe.lock(reg.lock_path(), false).ok());
  CHECK(probe.busy());
  held.unlock();
  CHECK(probe.lock(reg.lock_path(), false).ok());
}

TEST_CASE("registry: tag filter parsing and matching", "[state]") {
  struct Row {
    const char* text;
    const char* error; // nullptr: parses
    TagFilter filter;
  };
  const Row rows[] = {
      {"env=prod", nullptr, {{"env", "prod"}}},
      {"env=prod,role=db", nullptr, {{"env", "prod"}, {"role", "db"}}},
      {"env=", nullptr, {{"env", ""}}},
      {"k=a=b", nullptr, {{"k", "a=b"}}},
      {" env = prod , role=db,", nullptr, {{"env", "prod"}, {"role", "db"}}},
      {"env", "invalid tag filter 'env' (expected key=value)", {}},
      {"=prod", "invalid tag filter '=prod' (expected key=value)", {}},
      {"env=prod,oops", "invalid tag filter 'oops' (expected key=value)", {}},
      {"", "empty tag filter (expected key=value[,key=value...])", {}},
      {" , ,", "empty tag filter (expected key=value[,key=value...])", {}},
  };
  for (const auto& r : rows) {
    INFO("filter '" << r.text << "'");
    auto f = parse_tag_filter(r.text);
    if (r.error) {
      CHECK(f.message() == r.error);
    } else {
      REQUIRE(f.ok());
      CHECK(*f == r.filter);
    }
  }

  const std::map<std::string, std::string> tags{{"env", "prod"}, {"role", "db"}, {"note", ""}};
  struct Match {
    TagFilter filter;
    bool match;
  };
  const Match matches[] = {
      {{{"env", "prod"}}, true},
      {{{"env", "prod"}, {"role", "db"}}, true},
      {{{"env", "prod"}, {"role", "web"}}, false},
      {{{"env", "Prod"}}, false},
      {{{"note", ""}}, true},
      {{{"missing", ""}}, false},
      {{}, true},
  };
  for (const auto& m : matches) {
    INFO("filter of " << m.filter.size());
    CHECK(tags_match(tags, m.filter) == m.match);
  }
}

TEST_CASE("registry: resolve_tags matches, orders by name, and targets as resolve_dispatch",
          "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  CHECK(reg.resolve_tags({{"env", "prod"}}).hosts.empty()); // no directory: no match
  auto tagged = [](AgentRecord r, std::map<std::string, std::string> tags) {
    r.tags = std::move(tags);
    return r;
  };
  const std::map<std::string, std::string> web_prod{{"env", "prod"}, {"role", "web"}};
  // "a-b.json" sorts before "a.json", but "a" before "a-b".
  REQUIRE(reg.register_agent(tagged(make_record("a", "10.0.0.1", "ip"), web_prod)).ok());
  REQUIRE(reg.register_agent(tagged(make_record("a-b", "10.0.0.2", "ip", 7450), web_prod)).ok());
  REQUIRE(reg.register_agent(tagged(make_record("b", "", "ip"), web_prod)).ok()); // no ip
  REQUIRE(reg.register_agent(tagged(make_record("c", "10.0.0.4"), {{"env", "prod"}})).ok());
  REQUIRE(reg.register_agent(tagged(make_record("d"), {{"env", "staging"}, {"role", "web"}})).ok());
  // The record's hostname member is where it is reached; the file name is its registry name.
  AgentRecord moved = tagged(make_record("e", "10.0.0.5"), web_prod);
  moved.hostname = "e.example.com";
  put_file(tmp, "e.json", agent_record_json(moved));
  put_file(tmp, "f.json", "{not json"); // corrupt: never matches

  struct Row {
    TagFilter filter;
    std::vector<DispatchTarget> hosts;
  };
  const Row rows[] = {
      {{{"role", "web"}, {"env", "prod"}},
       {{"a", "10.0.0.1"}, {"a-b", "10.0.0.2:7450"}, {"b", "b"}, {"e", "e.example.com"}}},
      {{{"env", "prod"}},
       {{"a", "10.0.0.1"},
        {"a-b", "10.0.0.2:7450"},
        {"b", "b"},
        {"c", "c"},
        {"e", "e.example.com"}}},
      {{{"env", "staging"}}, {{"d", "d"}}},
      {{{"env", "prod"}, {"role", "db"}}, {}},
      {{{"nope", ""}}, {}},
  };
  for (int pass = 0; pass < 2; ++pass) { // without an index, then through one
    for (const auto& row : rows) {
      INFO("pass " << pass << ", filter of " << row.filter.size() << ", first "
                   << row.filter[0].first);
      auto res = reg.resolve_tags(row.filter);
      CHECK(res.ok);
      CHECK(res.unknown.empty());
      CHECK(res.hosts == row.hosts);
      REQUIRE(res.refs.size() == res.hosts.size());
      for (size_t i = 0; i < res.hosts.size(); ++i) {
        CHECK(res.refs[i] == res.hosts[i].name);
        // The one computation: a bare name resolves to the same target either way.
        auto one = reg.resolve_dispatch({res.hosts[i].name});
        REQUIRE(one.ok);
        CHECK(one.hosts[0] == res.hosts[i]);
      }
    }
  }
}

TEST_CASE("registry: bulk_update_tags writes only existing records whose tags differ", "[state]") {
  test::TempDir tmp;
  Registry reg(tmp / "agents");
  AgentRecord web = make_record("web", "10.0.0.5");
  web.tags = {{"env", "staging"}};
  AgentRecord db = make_record("db", "10.0.0.6");
  db.tags = {{"env", "prod"}, {"role", "db"}};
  REQUIRE(reg.register_agent(web).ok());
  REQUIRE(reg.register_agent(db).ok());
  put_file(tmp, "junk.json", "{not json");
  struct stat db_before;
  REQUIRE(::stat(reg.record_path("db").c_str(), &db_before) == 0);

  auto n = reg.bulk_update_tags({{"web", {{"env", "prod"}, {"role", "web"}}},
                                 {"db", {{"env", "prod"}, {"role", "db"}}}, // as they are
                                 {"ghost", {{"env", "prod"}}},              // not registered
                                 {"junk", {{"env", "prod"}}},               // does not parse
                                 {"../x", {{"env", "prod"}}}});             // not a name
  REQUIRE(n.ok());
  CHECK(*n == 1);
  AgentRecord want = web;
  want.tags = {{"env", "prod"}, {"role", "web"}};
  CHECK(*reg.get("web") == want); // every other field kept
  struct stat db_after;
  REQUIRE(::stat(reg.record_path("db").c_str(), &db_after) == 0);
  CHECK(db_after.st_ino == db_before.st_ino); // not rewritten
  CHECK_FALSE(path_exists(reg.record_path("ghost")));
  CHECK(test::slurp(reg.record_path("junk")) == "{not json");
  CHECK(*list_dir(tmp.path()) == std::vector<std::string>{"agents"});

  // Emptied tags are a difference too; the same update again writes nothing.
  n = reg.bulk_update_tags({{"web", {}}});
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(reg.get("web")->tags.empty());
  n = reg.bulk_update_tags({{"web", {}}, {"db", db.tags}});
  REQUIRE(n.ok());
  CHECK(*n == 0);

  // An empty list touches nothing, not even the lock file.
  test::TempDir other;
  Registry empty(other / "agents");
  auto zero = empty.bulk_update_tags({});
  REQUIRE(zero.ok());
  CHECK(*zero == 0);
  CHECK_FALSE(path_exists(empty.dir()));
}
