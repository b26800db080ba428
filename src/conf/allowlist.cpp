// The scripts.conf allowlist; see allowlist.hpp.
#include "conf/allowlist.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"

namespace cx::conf {

namespace {

bool is_annotation_name_char(char c) {
  return (c >= 'a' && c <= 'z') || c == '_';
}

// `^([a-z_]+)=(.*)$`: the name and value of an annotation token.
std::optional<std::pair<std::string_view, std::string_view>>
match_annotation(std::string_view tok) {
  size_t i = 0;
  while (i < tok.size() && is_annotation_name_char(tok[i]))
    ++i;
  if (i == 0 || i == tok.size() || tok[i] != '=') return std::nullopt;
  return std::make_pair(tok.substr(0, i), tok.substr(i + 1));
}

bool has_dotdot_component(std::string_view p) {
  for (const auto& part : split(p, '/'))
    if (part == "..") return true;
  return false;
}

// The path as in_script_dirs() compares it; "" when it must be rejected.
std::string canonical_script_path(const std::string& path) {
  // Relative paths are never accepted, whatever the working directory would make of them.
  if (path.empty() || path.front() != '/') return "";
  if (auto r = real_path(path)) return *r;
  if (has_dotdot_component(path)) return "";
  // A missing script under a symlinked directory still resolves to where it would live.
  if (auto parent = real_path(dirname(path))) {
    std::string base = basename(path);
    return *parent == "/" ? "/" + base : *parent + "/" + base;
  }
  return path;
}

std::string canonical_dir(const std::string& dir) {
  if (auto r = real_path(dir)) return *r;
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/')
    d.pop_back();
  return d;
}

} // namespace

AllowlistLoad parse_allowlist(std::string_view text, const std::string& path) {
  AllowlistLoad load;
  size_t lineno = 0;
  for (std::string_view line : split_lines(text)) {
    ++lineno;
    std::string where = path + " line " + std::to_string(lineno);
    size_t i = 0;
    while (i < line.size() && is_perl_space(line[i]))
      ++i;
    if (i == line.size() || line[i] == '#') continue;

    size_t name_start = i;
    while (i < line.size() && (is_word_char(line[i]) || line[i] == '-'))
      ++i;
    size_t name_end = i;
    while (i < line.size() && is_perl_space(line[i]))
      ++i;
    std::optional<std::string> value;
    if (name_end > name_start && i < line.size() && line[i] == '=')
      value = capture_value(line.substr(i + 1));
    if (!value) {
      load.warnings.push_back("Skipping malformed allowlist line in " + where + ": " +
                              std::string(line));
      continue;
    }
    std::string name(line.substr(name_start, name_end - name_start));
    auto skip = [&](const std::string& why) {
      load.warnings.push_back("Skipping allowlist entry '" + name + "' in " + where + ": " + why);
    };

    ScriptEntry entry;
    std::vector<std::string> paths;
    bool empty_profile = false;
    for (const auto& tok : split_ws(*value)) {
      if (auto a = match_annotation(tok)) {
        if (a->first == "profile") {
          entry.profile = std::string(a->second);
          empty_profile = a->second.empty();
        }
        continue;
      }
      paths.push_back(tok);
    }
    if (paths.empty()) {
      skip("no script path");
    } else if (paths.size() > 1) {
      skip("more than one script path (" + join(paths, ", ") + ")");
    } else if (paths[0].front() != '/') {
      skip("script path '" + paths[0] + "' is not absolute");
    } else if (empty_profile) {
      skip("empty profile= annotation");
    } else {
      entry.path = paths[0];
      load.scripts.insert_or_assign(std::move(name), std::move(entry));
    }
  }
  return load;
}

Result<AllowlistLoad> load_allowlist(const std::string& path) {
  auto text = read_config_file(path);
  if (!text.ok()) {
    // read_config_file says "Cannot open config"; name the allowlist instead.
    std::string msg = text.message();
    const std::string prefix = "Cannot open config";
    if (msg.compare(0, prefix.size(), prefix) == 0)
      msg.replace(0, prefix.size(), "Cannot open allowlist");
    return error(msg);
  }
  return parse_allowlist(*text, path);
}

std::vector<std::pair<std::string, std::string>>
undefined_profiles(const Allowlist& scripts, const std::map<std::string, Profile>& profiles) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : scripts)
    if (!profiles.count(entry.profile)) out.emplace_back(name, entry.profile);
  return out;
}

std::string undefined_profiles_message(const Allowlist& scripts,
                                       const std::map<std::string, Profile>& profiles) {
  auto missing = undefined_profiles(scripts, profiles);
  if (missing.empty()) return "";
  std::vector<std::string> parts;
  for (const auto& [name, profile] : missing)
    parts.push_back(name + " -> " + profile);
  return "script(s) reference an undefined profile: " + join(parts, ", ");
}

bool in_script_dirs(const std::string& path, const std::vector<std::string>& dirs) {
  if (dirs.empty()) return true;
  std::string p = canonical_script_path(path);
  if (p.empty() || p.front() != '/') return false;
  for (const auto& dir : dirs) {
    std::string d = canonical_dir(dir);
    if (d.empty() || d.front() != '/') continue;
    if (d == "/") return true;
    if (p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/'))
      return true;
  }
  return false;
}

std::vector<std::string> drop_outside_script_dirs(Allowlist& scripts,
                                                  const std::vector<std::string>& dirs) {
  std::vector<std::string> warnings;
  for (auto it = scripts.begin(); it != scripts.end();) {
    if (in_script_dirs(it->second.path, dirs)) {
      ++it;
      continue;
    }
    warnings.push_back("Skipping allowlist entry '" + it->first + "': " + it->second.path +
                       " is not inside script_dirs (" + join(dirs, ":") + ")");
    it = scripts.erase(it);
  }
  return warnings;
}

} // namespace cx::conf
