// A test-only driver of the etcd client (src/etcdkv) for test_client.py: one EtcdKv, opened
// from the arguments, kept for the process's life (so a test can stop and restart etcd under
// the same client), and one operation per line of stdin, each a JSON object, answered by one
// JSON line on stdout. Values travel base64 both ways, so any bytes round-trip.
//
//   etcd-kv-driver --endpoints=URL[,URL...] [--prefix=P] [--ca=F --cert=F --key=F]
//                  [--dial-timeout-ms=N] [--timeout-ms=N]
//
//   {"op":"put","key":"k","value":"<b64>","lease":0}   -> {"ok":true}
//   {"op":"get","key":"k"}          -> {"ok":true,"found":true,"value":"<b64>","revision":N}
//   {"op":"list","prefix":"p"}      -> {"ok":true,"kvs":[{"key","value","revision"}...]}
//   {"op":"create"|"replace"|"remove"|"move", ...} -> {"ok":true,"done":bool}
//   {"op":"grant","ttl":N} -> {"ok":true,"lease":N}; "keepalive"/"revoke" with "lease"
//   {"op":"race_create","key":"k","threads":N}: N threads create k at once
//       -> {"ok":true,"created":[thread indexes that won],"errors":[...]}
//   {"op":"increment","key":"k","threads":N,"times":M}: each thread adds 1 to the decimal
//       value of k M times by get + replace (compare-and-swap), retrying a lost swap
//       -> {"ok":true,"value":"<final>","retries":R,"errors":[...]}
//   a failure                       -> {"ok":false,"kind":"refused","message":"..."}
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/strings.hpp"
#include "etcdkv/etcd_kv.hpp"
#include "event/loop.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

using namespace cx;

namespace {

std::string failure(const Status& st) {
  json::Writer w;
  w.begin_object()
      .member("ok", false)
      .member("kind", std::string(kind_name(st.kind())))
      .member("message", st.message())
      .end_object();
  return w.str();
}

std::string str(const json::Value& op, const char* field) {
  auto s = json::get_string_or(op, field, "");
  return s.ok() ? *s : "";
}
int64_t num(const json::Value& op, const char* field) {
  auto n = json::get_int64_or(op, field, 0);
  return n.ok() ? *n : 0;
}
std::string bytes(const json::Value& op, const char* field) {
  return base64_decode(str(op, field)).value_or("");
}

std::string done(Result<bool> r) {
  if (!r.ok()) return failure(r.status());
  json::Writer w;
  w.begin_object().member("ok", true).member("done", *r).end_object();
  return w.str();
}

std::string race_create(etcdkv::EtcdKv& kv, const std::string& key, int threads) {
  std::atomic<int> ready{0};
  std::mutex mu;
  std::vector<int> created;
  std::vector<std::string> errors;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&, i] {
      ++ready;
      while (ready < threads)
        std::this_thread::yield();
      auto r = kv.create(key, "thread " + std::to_string(i));
      std::lock_guard lock(mu);
      if (!r.ok())
        errors.push_back(r.message());
      else if (*r)
        created.push_back(i);
    });
  for (auto& t : ts)
    t.join();
  json::Writer w;
  w.begin_object().member("ok", true).key("created").begin_array();
  for (int i : created)
    w.int64(i);
  w.end_array().member("errors", errors).end_object();
  return w.str();
}

std::string increment(etcdkv::EtcdKv& kv, const std::string& key, int threads, int times) {
  std::mutex mu;
  std::vector<std::string> errors;
  std::atomic<int64_t> retries{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      for (int n = 0; n < times; ++n) {
        for (int attempt = 0;; ++attempt) {
          auto cur = kv.get(key);
          if (!cur.ok()) {
            std::lock_guard lock(mu);
            errors.push_back(cur.message());
            break;
          }
          int64_t v = *cur ? std::atoll((*cur)->value.c_str()) : 0;
          int64_t rev = *cur ? (*cur)->revision : 0;
          auto swapped = kv.replace(key, rev, std::to_string(v + 1));
          if (!swapped.ok() || attempt > 1000) {
            std::lock_guard lock(mu);
            errors.push_back(swapped.ok() ? "too many retries" : swapped.message());
            break;
          }
          if (*swapped) break;
          ++retries;
        }
      }
    });
  for (auto& t : ts)
    t.join();
  auto last = kv.get(key);
  if (!last.ok()) return failure(last.status());
  json::Writer w;
  w.begin_object()
      .member("ok", true)
      .member("value", *last ? (*last)->value : "")
      .member("retries", retries.load())
      .member("errors", errors)
      .end_object();
  return w.str();
}

std::string run(etcdkv::EtcdKv& kv, const json::Value& op) {
  const std::string name = str(op, "op"), key = str(op, "key");
  json::Writer w;
  if (name == "put") {
    Status st = kv.put(key, bytes(op, "value"), num(op, "lease"));
    if (!st.ok()) return failure(st);
    w.begin_object().member("ok", true).end_object();
  } else if (name == "get") {
    auto r = kv.get(key);
    if (!r.ok()) return failure(r.status());
    w.begin_object().member("ok", true).member("found", r->has_value());
    if (*r) w.member("value", base64_encode((*r)->value)).member("revision", (*r)->revision);
    w.end_object();
  } else if (name == "list") {
    auto r = kv.list(str(op, "prefix"));
    if (!r.ok()) return failure(r.status());
    w.begin_object().member("ok", true).key("kvs").begin_array();
    for (const auto& e : *r)
      w.begin_object()
          .member("key", e.key)
          .member("value", base64_encode(e.value))
          .member("revision", e.revision)
          .end_object();
    w.end_array().end_object();
  } else if (name == "create") {
    return done(kv.create(key, bytes(op, "value"), num(op, "lease")));
  } else if (name == "replace") {
    return done(kv.replace(key, num(op, "revision"), bytes(op, "value"), num(op, "lease")));
  } else if (name == "remove") {
    return done(kv.remove(key));
  } else if (name == "move") {
    return done(kv.move(key, num(op, "revision"), str(op, "to"), bytes(op, "value")));
  } else if (name == "grant") {
    auto r = kv.grant_lease(num(op, "ttl"));
    if (!r.ok()) return failure(r.status());
    w.begin_object().member("ok", true).member("lease", *r).end_object();
  } else if (name == "keepalive" || name == "revoke") {
    Status st =
        name == "revoke" ? kv.revoke_lease(num(op, "lease")) : kv.keep_alive(num(op, "lease"));
    if (!st.ok()) return failure(st);
    w.begin_object().member("ok", true).end_object();
  } else if (name == "race_create") {
    return race_create(kv, key, static_cast<int>(num(op, "threads")));
  } else if (name == "increment") {
    return increment(kv, key, static_cast<int>(num(op, "threads")),
                     static_cast<int>(num(op, "times")));
  } else {
    return failure(error("unknown op '" + name + "'"));
  }
  return w.str();
}

} // namespace

int main(int argc, char** argv) {
  event::ignore_sigpipe(); // as every applet: a member that hangs up is an error, not our end
  etcdkv::Options o;
  o.dial_timeout_ms = 1000;
  o.timeout_ms = 3000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    std::string name = a.substr(0, eq), value = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (name == "--endpoints")
      o.endpoints = split(value, ',');
    else if (name == "--prefix")
      o.prefix = value;
    else if (name == "--ca")
      o.ca = value;
    else if (name == "--cert")
      o.cert = value;
    else if (name == "--key")
      o.key = value;
    else if (name == "--dial-timeout-ms")
      o.dial_timeout_ms = std::strtoull(value.c_str(), nullptr, 10);
    else if (name == "--timeout-ms")
      o.timeout_ms = std::strtoull(value.c_str(), nullptr, 10);
    else
      return std::fprintf(stderr, "etcd-kv-driver: unknown argument %s\n", argv[i]), 2;
  }
  auto kv = etcdkv::EtcdKv::open(o);
  if (!kv.ok()) {
    std::cout << failure(kv.status()) << std::endl;
    return 1;
  }
  std::cout << R"({"ok":true,"opened":")" << (*kv)->describe() << "\"}" << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    auto op = json::parse_object(line);
    std::cout << (op.ok() ? run(**kv, *op) : failure(op.status())) << std::endl;
  }
  return 0;
}
