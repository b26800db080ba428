// The scripts cache; see scripts_cache.hpp.
#include "state/scripts_cache.hpp"

#include "base/files.hpp"
#include "base/strings.hpp"

namespace cx::state {

std::string scripts_cache_text(const ScriptsByAgent& scripts) {
  std::string out;
  for (const auto& [name, list] : scripts) {
    if (!is_agent_name(name)) continue;
    out += name;
    for (const auto& s : list)
      if (is_script_name(s)) out += " " + s;
    out += "\n";
  }
  return out;
}

ScriptsByAgent parse_scripts_cache(std::string_view text) {
  ScriptsByAgent out;
  for (const std::string& line : split(text, '\n')) {
    std::vector<std::string> words = split_ws(line);
    if (words.empty() || !is_agent_name(words[0])) continue;
    std::vector<std::string>& list = out[words[0]];
    list.clear();
    for (size_t i = 1; i < words.size(); ++i)
      if (is_script_name(words[i])) list.push_back(words[i]);
  }
  return out;
}

Status update_scripts_cache(const std::string& path, const ScriptsByAgent& update) {
  ScriptsByAgent all;
  std::string before;
  if (auto text = read_file(path); text.ok()) {
    before = std::move(*text);
    all = parse_scripts_cache(before);
  }
  for (const auto& [name, list] : update)
    all[name] = list;
  std::string after = scripts_cache_text(all);
  if (after == before) return {}; // every ping asks: most find nothing new, and write nothing
  WriteOptions opts;
  opts.mode = 0644;
  return write_file_atomic(path, after, opts);
}

} // namespace cx::state
