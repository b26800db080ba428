// The typed agent config and profile validation; see agent.hpp.
#include "conf/agent.hpp"

#include <arpa/inet.h>

#include "base/files.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"

namespace cx::conf {

namespace {

bool is_upper_or_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_alpha(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool valid_run_as(std::string_view s) {
  if (is_digits(s)) return true;
  if (s.empty() || !(is_alpha(s.front()) || s.front() == '_')) return false;
  for (char c : s)
    if (!is_word_char(c) && c != '-') return false;
  return true;
}

bool valid_cap(std::string_view s) {
  if (s.size() <= 4 || s.substr(0, 4) != "CAP_") return false;
  for (char c : s.substr(4))
    if (!is_upper_or_digit(c) && c != '_') return false;
  return true;
}

// Perl's `split /[,\s]+/` with the empty fields dropped.
std::vector<std::string> split_caps(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || is_perl_space(s[i])))
      ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ',' && !is_perl_space(s[i]))
      ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

// Perl's `split /:/`: empty fields kept, except trailing ones.
std::vector<std::string> perl_split_colon(std::string_view s) {
  std::vector<std::string> out = split(s, ':');
  while (!out.empty() && out.back().empty())
    out.pop_back();
  return out;
}

bool nnp_on(std::string_view v) {
  std::string l = to_lower(v);
  return l == "1" || l == "y" || l == "yes" || l == "true" || l == "on";
}

void read_rate_limit(const KeyValues& top, const char* key, RateLimit& out,
                     std::vector<ConfigWarning>& warnings) {
  const std::string* v = find_value(top, key);
  if (!v) return;
  if (auto r = parse_rate_limit(*v)) {
    out = *r;
    return;
  }
  warnings.push_back({key, "malformed value '" + *v + "' (expected limit/window/block); using " +
                               format_rate_limit(out)});
}

} // namespace

Result<MetricsBind> parse_metrics_bind(std::string_view value) {
  std::string_view v = trim(value);
  auto bad = [&] {
    return error("Config key 'metrics_bind' must be [address:]port (an IP address and a port "
                 "1-65535), got '" +
                 std::string(v) + "'");
  };
  MetricsBind b{"127.0.0.1", 0};
  std::string_view port = v;
  if (size_t colon = v.rfind(':'); colon != std::string_view::npos) {
    std::string host(v.substr(0, colon));
    port = v.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
      in6_addr a6;
      if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) return bad();
    } else {
      in_addr a4;
      if (inet_pton(AF_INET, host.c_str(), &a4) != 1) return bad();
    }
    b.ip = host;
  }
  auto n = parse_uint(port);
  if (!n || *n < 1 || *n > 65535) return bad();
  b.port = static_cast<int>(*n);
  return b;
}

Result<Profile> parse_profile(std::string_view name, const KeyValues& fields) {
  Profile p;
  std::string where = "Profile '" + std::string(name) + "': ";
  if (const std::string* v = find_value(fields, "run_as")) {
    std::string_view s = trim(*v);
    if (!s.empty()) {
      if (!valid_run_as(s))
        return error(where + "invalid run_as '" + std::string(s) +
                     "' (expected a user name or a numeric uid)");
      if (is_digits(s)) {
        auto uid = parse_uint(s);
        if (!uid || *uid > 4294967295u)
          return error(where + "run_as uid '" + std::string(s) + "' is out of range");
      }
      p.run_as = std::string(s);
    }
  }
  if (const std::string* v = find_value(fields, "caps")) {
    for (auto& cap : split_caps(*v)) {
      if (valid_cap(cap)) {
        p.caps.push_back(std::move(cap));
        continue;
      }
      std::string msg = where + "invalid caps entry '" + cap + "' (expected CAP_NAME)";
      if (cap.front() == '#') msg += "; comments must be on their own line, not after a value";
      return error(msg);
    }
  }
  if (const std::string* v = find_value(fields, "writable")) {
    for (auto& dir : perl_split_colon(*v)) {
      if (dir.empty() || dir.front() != '/')
        return error(where + "writable path '" + dir + "' must be absolute");
      p.writable.push_back(std::move(dir));
    }
  }
  if (const std::string* v = find_value(fields, "no_new_privileges"))
    p.no_new_privileges = nnp_on(*v);
  return p;
}

Result<AgentConfigLoad> make_agent_config(const SectionedConfig& ini, const std::string& path) {
  const KeyValues& top = ini.top;
  for (const char* k : {"port", "cert", "key", "ca"})
    if (!find_value(top, k)) return error(std::string("Missing required config key '") + k + "'");

  AgentConfigLoad load;
  AgentConfig& c = load.config;
  c.path = path;
  const std::string& port = *find_value(top, "port");
  auto port_num = parse_uint(port);
  if (!port_num) return error("Config key 'port' must be a number, got '" + port + "'");
  if (*port_num > 65535)
    return error("Config key 'port' must be at most 65535, got '" + port + "'");
  c.port = static_cast<int>(*port_num);
  c.cert = *find_value(top, "cert");
  c.key = *find_value(top, "key");
  c.ca = *find_value(top, "ca");

  c.trusted_dispatchers_path = paths::agent_trusted_map();
  c.revoked_serials = paths::agent_revoked();
  c.cert_staging_path = paths::agent_staged_cert();
  c.async_runs_dir = paths::agent_runs();
  read_string(top, "trusted_dispatchers_path", c.trusted_dispatchers_path);
  read_string(top, "revoked_serials", c.revoked_serials);
  read_string(top, "cert_staging_path", c.cert_staging_path);
  read_string(top, "async_runs_dir", c.async_runs_dir);
  read_string(top, "executor_socket", c.executor_socket);
  if (auto v = find_value(top, "require_executor")) {
    std::string b = to_lower(*v);
    if (b == "1" || b == "y" || b == "yes" || b == "true" || b == "on")
      c.require_executor = true;
    else if (!(b == "0" || b == "n" || b == "no" || b == "false" || b == "off"))
      return error("require_executor in '" + path + "' must be yes or no, not '" + *v + "'");
  }
  read_string(top, "allowed_ips", c.allowed_ips);
  if (auto v = find_value(top, "metrics_bind")) {
    CX_ASSIGN_OR_RETURN(MetricsBind b, parse_metrics_bind(*v));
    c.metrics_bind_ip = b.ip;
    c.metrics_port = b.port;
  }
  if (auto v = find_value(top, "script_dirs"))
    for (auto& d : split(*v, ':'))
      if (!d.empty()) c.script_dirs.push_back(std::move(d));
  if (auto v = find_value(top, "rate_limit_disable")) c.rate_limit_disable = starts_with_1_or_y(*v);
  read_rate_limit(top, "rate_limit_volume", c.rate_limit_volume, load.warnings);
  read_rate_limit(top, "rate_limit_probe", c.rate_limit_probe, load.warnings);

  IntReader ints(top, load.warnings);
  ints.read_into("stdin_timeout", c.stdin_timeout, 0);
  ints.read_into("auth_hook_timeout", c.auth_hook_timeout, 0);
  ints.read_into("max_children", c.max_children, 1);
  ints.read_into("script_timeout", c.script_timeout, 0);
  ints.read_into("script_output_limit", c.script_output_limit, 0);
  ints.read_into("max_connections", c.max_connections, 1);
  ints.read_into("max_connections_per_ip", c.max_connections_per_ip, 1);
  ints.read_into("max_handshakes_per_ip", c.max_handshakes_per_ip, 1);
  ints.read_into("max_untrusted", c.max_untrusted, 1);
  ints.read_into("request_head_timeout", c.request_head_timeout, 1, 86400);
  ints.read_into("request_body_timeout", c.request_body_timeout, 1, 86400);

  c.tags.insert(ini.tags.begin(), ini.tags.end());
  for (const auto& [name, fields] : ini.profiles) {
    CX_ASSIGN_OR_RETURN(Profile p, parse_profile(name, fields));
    c.profiles.emplace(name, std::move(p));
  }

  if (auto v = find_value(top, "auth_hook")) {
    // Stricter than Perl's -x, which is also true for a directory: the hook must be a regular
    // file this process may execute.
    if (!is_executable_file(*v)) return error("auth_hook '" + *v + "' is not executable");
    c.auth_hook = *v;
  }
  return load;
}

Result<AgentConfigLoad> load_agent_config(const std::string& path) {
  CX_ASSIGN_OR_RETURN(SectionedConfig ini, load_sectioned(path));
  return make_agent_config(ini, path);
}

AgentPairingFiles load_agent_pairing_files(const std::string& path) {
  AgentPairingFiles f{paths::kAgentPort, paths::agent_cert(), paths::agent_key(), paths::agent_ca(),
                      paths::agent_trusted_map()};
  auto ini = load_sectioned(path);
  if (!ini.ok()) return f;
  const KeyValues& top = ini->top;
  if (auto* p = find_value(top, "port")) {
    if (auto n = parse_uint(*p); n && *n >= 1 && *n <= 65535) f.port = static_cast<int>(*n);
  }
  if (auto* v = find_value(top, "cert")) f.cert = *v;
  if (auto* v = find_value(top, "key")) f.key = *v;
  if (auto* v = find_value(top, "ca")) f.ca = *v;
  if (auto* v = find_value(top, "trusted_dispatchers_path")) f.trusted_map = *v;
  return f;
}

} // namespace cx::conf
