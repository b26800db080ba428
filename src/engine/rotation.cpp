// The dispatcher cert's lifecycle; see rotation.hpp.
#include "engine/rotation.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>

#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "log/log.hpp"
#include "pki/cert.hpp"
#include "pki/dispatcher_identity.hpp"
#include "pki/serial.hpp"
#include "state/rotation.hpp"

namespace cx::engine {

namespace {

std::string ca_dir_of(const conf::DispatcherConfig& c) {
  return c.ca_dir.empty() ? paths::dispatcher_etc() : c.ca_dir;
}

std::string rotation_path(const conf::DispatcherConfig& c) {
  return c.rotation_file.empty() ? paths::rotation_file() : c.rotation_file;
}

// rotation.json, or nullopt when absent or corrupt (logged as the original does).
std::optional<state::RotationState> load_state(const conf::DispatcherConfig& c) {
  auto st = state::load_rotation(rotation_path(c));
  if (!st.ok()) {
    log::err("rotation-state-corrupt",
             {{"ERROR", st.message()}, {"PATH", rotation_path(c)}, {"REASON", "unreadable"}});
    return std::nullopt;
  }
  return *st;
}

// Names of registered agents whose serial_status is one of `statuses`.
std::vector<std::string> agents_with_status(state::Registry& reg,
                                            std::initializer_list<std::string_view> statuses) {
  std::vector<std::string> names;
  auto all = reg.list();
  if (!all.ok()) return names;
  for (const auto& r : *all)
    for (auto s : statuses)
      if (r.serial_status == s) {
        names.push_back(r.hostname);
        break;
      }
  return names;
}

} // namespace

std::string previous_cert_path(const conf::DispatcherConfig& c) {
  return c.cert + ".previous";
}
std::string previous_key_path(const conf::DispatcherConfig& c) {
  return c.key + ".previous";
}

Result<int64_t> cert_days_left(const std::string& cert_path, int64_t now) {
  CX_ASSIGN_OR_RETURN(std::string pem, read_file(cert_path, 1u << 20));
  CX_ASSIGN_OR_RETURN(pki::CertInfo info, pki::cert_info(pem));
  return (info.not_after - now) / 86400;
}

namespace {

// Puts `id` in place of the identity at cert/key: both are written beside their targets first,
// then renamed over them key first. If the cert cannot be renamed, the previous key is put back,
// so the pair on disk always matches.
Status install_identity(const conf::DispatcherConfig& c, const pki::DispatcherIdentity& id,
                        const std::optional<std::string>& previous_key) {
  const std::string cert_new = c.cert + ".new", key_new = c.key + ".new";
  Status st = pki::write_dispatcher_identity(id, cert_new, key_new, c.service_user);
  if (st.ok() && ::rename(key_new.c_str(), c.key.c_str()) != 0)
    st = error("cannot rename '" + key_new + "' to '" + c.key + "': " + errno_text(errno));
  if (st.ok() && ::rename(cert_new.c_str(), c.cert.c_str()) != 0) {
    st = error("cannot rename '" + cert_new + "' to '" + c.cert + "': " + errno_text(errno));
    if (previous_key) {
      WriteOptions o;
      o.mode = 0600;
      (void)write_file_atomic(c.key, *previous_key, o);
    }
  }
  (void)remove_file(cert_new);
  (void)remove_file(key_new);
  return st;
}

} // namespace

Result<RotationOutcome> rotate_cert(const conf::DispatcherConfig& c, int64_t now, bool force) {
  auto fail = [](const std::string& why) -> Status {
    log::err("cert-rotation-fail", {{"ERROR", why}});
    return error(why);
  };
  // A second rotation inside the overlap window would overwrite the previous identity that
  // agents which missed the first one still trust, and leave them unreachable.
  auto previous_state = load_state(c);
  if (!force && previous_state && previous_state->previous_serial &&
      !previous_state->previous_serial->empty())
    return fail("the previous serial " + *previous_state->previous_serial +
                " is not retired yet (overlap until " + previous_state->overlap_expires +
                "); rotate after 'ctrl-exec-dispatcher maintain' has retired it, or pass --force");

  RotationOutcome out;
  out.old_serial = pki::served_serial(c.cert);
  pki::KeySpec spec = pki::key_spec_of(c.key, pki::KeySpec{});
  auto days = static_cast<unsigned>(std::clamp<int64_t>(c.rotation_cert_days(), 1, 36500));
  auto id = pki::issue_dispatcher_identity(pki::CaStore{ca_dir_of(c)}, spec, days);
  if (!id.ok()) return fail("cert generation failed: " + id.message());
  out.serial = pki::canon_serial(id->serial);
  out.overlap_expires = iso8601_utc(now + c.cert_overlap_days * 86400);

  // 1. The identity agents trust today stays usable until the previous serial is retired.
  auto old_cert = read_file(c.cert, 1u << 20);
  auto old_key = read_file(c.key, 1u << 20);
  std::optional<std::string> previous_key;
  if (old_cert.ok() && old_key.ok()) {
    previous_key = *old_key;
    pki::DispatcherIdentity prev{*old_key, *old_cert, out.old_serial};
    if (Status st = pki::write_dispatcher_identity(prev, previous_cert_path(c),
                                                   previous_key_path(c), c.service_user);
        !st.ok())
      return fail("cannot keep the previous identity: " + st.message());
  }

  // 2. Every agent is marked pending. Harmless if a later step fails: the next broadcast
  //    announces the serial in force, which they already trust, and marks them current again.
  state::Registry reg(c.registry_dir);
  auto agents = reg.list();
  if (!agents.ok()) return fail("cannot read the agent registry: " + agents.message());
  std::vector<std::pair<std::string, state::SerialUpdate>> updates;
  for (const auto& a : *agents) {
    state::SerialUpdate u;
    u.serial_status = std::string(state::kSerialPending);
    u.serial_broadcast = iso8601_utc(now);
    updates.emplace_back(a.hostname, std::move(u));
  }
  auto marked = reg.bulk_update_serial(updates);
  if (!marked.ok()) return fail("cannot mark the agents pending: " + marked.message());
  out.agents_pending = *marked;

  // 3. The new state, then 4. the new identity; if that fails, the previous state comes back.
  state::RotationState rs;
  rs.current_serial = out.serial;
  rs.previous_serial = out.old_serial;
  rs.rotated_at = iso8601_utc(now);
  rs.overlap_expires = out.overlap_expires;
  rs.overlap_days = c.cert_overlap_days;
  if (Status st = state::save_rotation(rotation_path(c), rs); !st.ok())
    return fail("cannot write the rotation state: " + st.message());
  if (Status st = install_identity(c, *id, previous_key); !st.ok()) {
    if (previous_state)
      (void)state::save_rotation(rotation_path(c), *previous_state);
    else
      (void)remove_file(rotation_path(c));
    return fail("cannot install the new cert: " + st.message());
  }
  log::info("cert-rotated", {{"AGENTS", std::to_string(out.agents_pending)},
                             {"NEW_SERIAL", out.serial},
                             {"OLD_SERIAL", out.old_serial},
                             {"OVERLAP_EXPIRES", out.overlap_expires}});
  return out;
}

Result<std::optional<RotationOutcome>> check_and_rotate(const conf::DispatcherConfig& c,
                                                        int64_t now) {
  auto days = cert_days_left(c.cert, now);
  if (!days.ok()) return error("cannot check the dispatcher cert: " + days.message());
  log::info("cert-check", {{"DAYS_LEFT", std::to_string(*days)},
                           {"THRESHOLD", std::to_string(c.cert_renewal_days)}});
  if (*days > c.cert_renewal_days) return std::optional<RotationOutcome>();
  log::info("cert-renewal-start", {{"DAYS_LEFT", std::to_string(*days)}});
  CX_ASSIGN_OR_RETURN(RotationOutcome out, rotate_cert(c, now, false));
  return std::optional<RotationOutcome>(std::move(out));
}

void broadcast_serial(Engine& engine, BroadcastFn done) {
  const conf::DispatcherConfig& c = engine.config();
  auto rs = load_state(c);
  if (!rs || rs->current_serial.empty()) return done({});
  std::vector<std::string> names =
      agents_with_status(engine.registry(), {state::kSerialPending, state::kSerialUnknown});
  if (names.empty()) return done({});
  state::DispatchResolution res = engine.registry().resolve_dispatch(names);
  if (!res.ok) {
    log::err("serial-broadcast-error", {{"ERROR", "unknown agents: " + join(res.unknown, ", ")}});
    return done({});
  }
  const std::string serial = rs->current_serial;
  log::info("serial-broadcast",
            {{"DISPATCHER", c.dispatcher_id}, {"HOSTS", join(names, ",")}, {"SERIAL", serial}});

  // Announce with the previous identity while it exists: that is the serial pending agents
  // still trust. An agent that refuses it (it trusts only the current one) is asked again
  // with the current identity.
  std::shared_ptr<AgentClient> previous;
  if (is_regular_file(previous_cert_path(c)) && is_regular_file(previous_key_path(c))) {
    int64_t t = std::max<int64_t>(1, c.read_timeout);
    auto p = AgentClient::create(previous_cert_path(c), previous_key_path(c), c.ca,
                                 static_cast<uint64_t>(t) * 1000, nullptr);
    if (p.ok())
      previous = std::shared_ptr<AgentClient>(std::move(*p));
    else
      log::err("serial-broadcast-error", {{"ERROR", "previous identity: " + p.message()}});
  }

  auto finish = [&engine, serial, done](Results results) {
    std::vector<BroadcastResult> out;
    std::string now = iso8601_utc(unix_now());
    for (const auto& r : results) {
      BroadcastResult b;
      b.hostname = r.name;
      b.ok = int_member(r.doc, "exit", -1) == 0;
      if (b.ok) {
        state::SerialUpdate u;
        u.dispatcher_serial = serial;
        u.serial_status = std::string(state::kSerialCurrent);
        u.serial_confirmed = now;
        if (Status st = engine.registry().update_serial(r.name, u); !st.ok()) {
          b.ok = false;
          b.error = st.message();
        } else {
          log::info("serial-confirmed", {{"AGENT", r.name}});
        }
      } else {
        b.error = string_member(r.doc, "error").value_or("rotate failed");
        log::warning("serial-broadcast-fail", {{"AGENT", r.name}, {"ERROR", b.error}});
      }
      out.push_back(std::move(b));
    }
    done(std::move(out));
  };

  auto targets = std::make_shared<std::vector<state::DispatchTarget>>(res.hosts);
  auto step_with = [&engine, serial](AgentClient* client) {
    return [&engine, serial, client](const std::vector<state::DispatchTarget>& batch, ResultsFn d) {
      return engine.rotate(batch, serial, "add", client, std::move(d));
    };
  };
  if (!previous) {
    run_batched(targets, 0, step_with(nullptr), std::make_shared<Results>(), finish);
    return;
  }
  run_batched(targets, 0, step_with(previous.get()), std::make_shared<Results>(),
              [&engine, previous, step_with, finish](Results first) {
                auto again = std::make_shared<std::vector<state::DispatchTarget>>();
                auto acc = std::make_shared<Results>();
                for (auto& r : first) {
                  if (r.state == HostState::denied)
                    again->push_back({r.name, r.target});
                  else
                    acc->push_back(std::move(r));
                }
                run_batched(again, 0, step_with(nullptr), acc, finish);
              });
}

size_t expire_stale_agents(const conf::DispatcherConfig& c, int64_t now) {
  auto rs = load_state(c);
  if (!rs) return 0;
  auto expires = parse_iso8601_utc(rs->overlap_expires);
  if (!expires || now <= *expires) return 0;
  state::Registry reg(c.registry_dir);
  size_t n = 0;
  for (const auto& name : agents_with_status(reg, {state::kSerialPending})) {
    state::SerialUpdate u;
    u.serial_status = std::string(state::kSerialStale);
    if (reg.update_serial(name, u).ok()) {
      ++n;
      log::warning("serial-stale",
                   {{"AGENT", name}, {"REASON", "overlap window expired without confirmation"}});
    }
  }
  return n;
}

void retire_previous_serial(Engine& engine, std::function<void()> done) {
  const conf::DispatcherConfig& c = engine.config();
  auto rs = load_state(c);
  if (!rs || !rs->previous_serial) return done();
  int64_t now = unix_now();
  auto expires = parse_iso8601_utc(rs->overlap_expires);
  if (!expires || now <= *expires) return done();

  auto settle = [&engine, rs = *rs, done](Results) mutable {
    const conf::DispatcherConfig& cfg = engine.config();
    rs.previous_serial.reset();
    rs.previous_retired = iso8601_utc(unix_now());
    if (Status st = state::save_rotation(rotation_path(cfg), rs); !st.ok())
      log::warning("serial-retire-error", {{"ERROR", st.message()}});
    (void)remove_file(previous_key_path(cfg));
    (void)remove_file(previous_cert_path(cfg));
    done();
  };
  const std::string previous = *rs->previous_serial;
  std::vector<std::string> names = agents_with_status(engine.registry(), {state::kSerialCurrent});
  if (previous.empty() || names.empty()) return settle({});
  state::DispatchResolution res = engine.registry().resolve_dispatch(names);
  log::info("serial-retire", {{"HOSTS", join(names, ",")}, {"SERIAL", previous}});
  auto targets = std::make_shared<std::vector<state::DispatchTarget>>(res.hosts);
  run_batched(
      targets, 0,
      [&engine, previous](const std::vector<state::DispatchTarget>& batch, ResultsFn d) {
        return engine.rotate(batch, previous, "remove", nullptr, std::move(d));
      },
      std::make_shared<Results>(), settle);
}

void run_cert_check(Engine& engine, std::function<void()> done) {
  const conf::DispatcherConfig& c = engine.config();
  expire_stale_agents(c, unix_now());
  retire_previous_serial(engine, [&engine, done] {
    const conf::DispatcherConfig& cfg = engine.config();
    auto rotated = check_and_rotate(cfg, unix_now());
    bool broadcast = false;
    if (!rotated.ok()) {
      log::warning("cert-check-warn", {{"ERROR", rotated.message()}});
    } else if (*rotated) {
      engine.reload_credentials(); // exchanges from now on present the new identity
      broadcast = true;
    } else {
      broadcast = !agents_with_status(engine.registry(), {state::kSerialPending}).empty();
    }
    if (!broadcast) return done();
    broadcast_serial(engine, [done](std::vector<BroadcastResult>) { done(); });
  });
}

} // namespace cx::engine

namespace cx::engine {

std::function<void(event::Loop&)> cert_check_runner(const conf::DispatcherConfig& c) {
  struct State {
    conf::DispatcherConfig config;
    std::unique_ptr<Engine> engine;
    bool busy = false;
  };
  auto st = std::make_shared<State>();
  st->config = c;
  return [st](event::Loop& loop) {
    if (st->busy) return;
    if (!st->engine)
      st->engine =
          std::make_unique<Engine>(loop, st->config, std::make_shared<MemorySessionStore>());
    st->busy = true;
    std::weak_ptr<State> weak = st;
    run_cert_check(*st->engine, [weak] {
      if (auto s = weak.lock()) s->busy = false;
    });
  };
}

} // namespace cx::engine
