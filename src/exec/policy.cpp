// The executor's policy; see policy.hpp.
#include "exec/policy.hpp"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include <algorithm>
#include <optional>

#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"

namespace cx::exec {

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  FileStamp s;
  if (::stat(path.c_str(), &st) != 0) return s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

Result<std::shared_ptr<const Policy>> load_policy(const std::string& agent_conf,
                                                  const std::string& scripts_conf) {
  auto p = std::make_shared<Policy>();
  p->agent_conf_path = agent_conf;
  p->scripts_conf_path = scripts_conf;
  // Stamps first: a change made while we read is then seen as a change next time.
  p->agent_stamp = stamp_of(agent_conf);
  p->scripts_stamp = stamp_of(scripts_conf);
  auto cfg = conf::load_agent_config(agent_conf);
  if (!cfg.ok()) return Status::error(ErrorKind::config, cfg.message());
  p->config = std::move(cfg->config);
  auto list = conf::load_allowlist(scripts_conf);
  if (!list.ok()) return Status::error(ErrorKind::config, list.message());
  p->scripts = std::move(list->scripts);
  return std::shared_ptr<const Policy>(std::move(p));
}

Decision decide(const Policy& policy, const std::string& script) {
  Decision d;
  auto entry = policy.scripts.find(script);
  if (entry == policy.scripts.end()) return d;
  if (!conf::in_script_dirs(entry->second.path, policy.config.script_dirs)) {
    d.kind = Decision::Kind::not_in_script_dirs;
    return d;
  }
  auto profile = policy.config.profiles.find(entry->second.profile);
  if (profile == policy.config.profiles.end()) {
    d.kind = Decision::Kind::undefined_profile;
    return d;
  }
  d.kind = Decision::Kind::ok;
  d.path = entry->second.path;
  d.profile_name = entry->second.profile;
  d.profile = profile->second;
  return d;
}

std::string decision_line(const Decision& d) {
  switch (d.kind) {
  case Decision::Kind::not_allowlisted:
    return "DENY not-allowlisted";
  case Decision::Kind::not_in_script_dirs:
    return "DENY not-in-script-dirs";
  case Decision::Kind::undefined_profile:
    return "DENY undefined-profile";
  case Decision::Kind::ok:
    break;
  }
  const conf::Profile& p = d.profile;
  return "OK path=" + d.path + "|profile=" + d.profile_name + "|run_as=" + p.run_as.value_or("") +
         "|nnp=" + (p.no_new_privileges ? "1" : "0") + "|caps=" + join(p.caps, ",") +
         "|writable=" + join(p.writable, ":");
}

namespace {

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The real path of an existing directory.
std::optional<std::string> real_dir(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf) || !is_directory(buf)) return std::nullopt;
  return std::string(buf);
}

} // namespace

std::vector<std::string> protected_dirs(const Policy& policy) {
  const auto& c = policy.config;
  std::vector<std::string> candidates{paths::agent_etc(),
                                      paths::agent_state(),
                                      dir_of(policy.agent_conf_path),
                                      dir_of(policy.scripts_conf_path),
                                      dir_of(c.trusted_dispatchers_path),
                                      c.async_runs_dir};
  std::vector<std::string> out;
  for (auto& d : candidates) {
    // Canonical, so that one directory reached two ways is mounted once.
    auto real = real_dir(d);
    if (!real) continue;
    if (*real == "/") continue; // never the whole tree: that is `writable`'s job
    if (std::find(out.begin(), out.end(), *real) == out.end()) out.push_back(*real);
  }
  return out;
}

} // namespace cx::exec
