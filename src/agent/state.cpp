// Loading the agent's state; see state.hpp.
#include "agent/state.hpp"

#include <cstdio>

#include "base/files.hpp"
#include "log/log.hpp"

namespace cx::agent {

Result<std::shared_ptr<State>> load_config_state(const Paths& paths) {
  auto st = std::make_shared<State>();
  CX_ASSIGN_OR_RETURN(conf::AgentConfigLoad cl, conf::load_agent_config(paths.config));
  st->config = std::move(cl.config);
  for (const auto& w : cl.warnings)
    log::warning("config-warn", {{"KEY", w.key}, {"MSG", w.message}});
  if (st->config.allowed_ips) {
    std::vector<conf::ConfigWarning> ipw;
    st->allowed_ips = AllowedIps::parse(*st->config.allowed_ips, &ipw);
    for (const auto& w : ipw)
      log::warning("config-warn", {{"ENTRY", w.key}, {"MSG", w.message}});
    if (st->allowed_ips.all_invalid())
      log::warning("config-warn",
                   {{"KEY", "allowed_ips"},
                    {"MSG", "no valid entry in allowed_ips; connections from ANY address are "
                            "accepted"}});
  }

  CX_ASSIGN_OR_RETURN(conf::AllowlistLoad al, conf::load_allowlist(paths.allowlist));
  st->scripts = std::move(al.scripts);
  for (const auto& w : al.warnings)
    std::fprintf(stderr, "ctrl-exec-agent: %s\n", w.c_str());
  // Unlike the original, which filtered only at execution, script_dirs also applies at load so
  // that /capabilities never lists a script /run would refuse (A§2.3 QUIRK).
  for (const auto& w : conf::drop_outside_script_dirs(st->scripts, st->config.script_dirs))
    std::fprintf(stderr, "ctrl-exec-agent: %s\n", w.c_str());
  std::string undefined = conf::undefined_profiles_message(st->scripts, st->config.profiles);
  if (!undefined.empty()) return error(undefined);

  st->sidecars = conf::load_sidecars(st->scripts);
  for (const auto& ev : st->sidecars.events)
    log::warning(ev.action, {{"SCRIPT", ev.script}, {"REASON", ev.reason}});
  return st;
}

void load_trust_state(State& state, const State* previous) {
  const auto& c = state.config;
  auto map = load_trusted_map(c.trusted_dispatchers_path);
  if (map.ok()) {
    state.trusted = std::move(*map);
  } else {
    std::fprintf(stderr, "ctrl-exec-agent: cannot load trusted dispatchers: %s%s\n",
                 map.message().c_str(), previous ? " (keeping the previous list)" : "");
    if (previous) state.trusted = previous->trusted;
  }
  auto revoked = load_revoked(c.revoked_serials);
  if (revoked.ok()) {
    state.revoked = std::move(revoked->list);
    if (revoked->absent)
      log::info("revoked-serials-absent",
                {{"PATH", c.revoked_serials}, {"REASON", revoked->absent_reason}});
  } else {
    std::fprintf(stderr, "ctrl-exec-agent: cannot load revoked serials: %s%s\n",
                 revoked.message().c_str(), previous ? " (keeping the previous list)" : "");
    if (previous) state.revoked = previous->revoked;
  }
}

Result<std::shared_ptr<State>> load_state(const Paths& paths, const State* previous) {
  CX_ASSIGN_OR_RETURN(std::shared_ptr<State> st, load_config_state(paths));
  load_trust_state(*st, previous);
  return st;
}

std::string unenforced_profiles_warning(const State& state) {
  if (state.config.executor_socket) return "";
  std::string names;
  for (const auto& [name, entry] : state.scripts) {
    auto p = state.config.profiles.find(entry.profile);
    // A profile that asks for nothing the agent could not give by itself is not worth a word
    // (no_new_privileges alone changes nothing for a script run as the agent).
    if (p == state.config.profiles.end() ||
        (!p->second.run_as && p->second.caps.empty() && p->second.writable.empty()))
      continue;
    names += (names.empty() ? "" : ", ") + name + " -> " + entry.profile;
  }
  if (names.empty()) return "";
  return "ctrl-exec-agent: WARNING: executor_socket is not set, so profiles are NOT enforced; "
         "these scripts run as the agent user: " +
         names;
}

std::string first_missing_tls_file(const conf::AgentConfig& c) {
  for (const std::string* p : {&c.cert, &c.key, &c.ca})
    if (!path_exists(*p)) return *p;
  return "";
}

} // namespace cx::agent
