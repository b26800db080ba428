// The applets' command-line front-end; see options.hpp.
#include "applets/options.hpp"

#include <algorithm>
#include <cstdio>

#include "base/exit_codes.hpp"
#include "base/strings.hpp"
#include "base/version.hpp"

namespace cx::applets {

namespace {

// What a long option's name (without dashes and value) stands for: the option spelled so, else
// every visible option whose name it begins, in alphabetical order.
struct Match {
  const CLI::Option* option = nullptr; // the one match, if there is exactly one
  std::vector<std::string> names;      // the full names it matches
};

Match find_long_option(const CLI::App& app, const std::string& name) {
  Match m;
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& full : o->get_lnames()) {
      if (full == name) return {o, {full}};
      bool hidden = o->get_group().empty();
      if (!hidden && !name.empty() && full.rfind(name, 0) == 0) {
        m.option = o;
        m.names.push_back(full);
      }
    }
  }
  std::sort(m.names.begin(), m.names.end());
  if (m.names.size() != 1) m.option = nullptr;
  return m;
}

// Rewrites each single-dash or abbreviated long option in `args` to its `--<full name>` form;
// the error for an unknown or ambiguous one.
std::optional<OptionError> spell_out(const CLI::App& app, std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue; // a word, or "-"
    std::string_view body = std::string_view(a).substr(a[1] == '-' ? 2 : 1);
    size_t eq = body.find('=');
    Match m = find_long_option(app, std::string(body.substr(0, eq)));
    if (m.names.empty()) return OptionError{OptionError::Kind::name, "unknown option '" + a + "'"};
    if (!m.option) {
      return OptionError{OptionError::Kind::name,
                         "option '" + a + "' is ambiguous (--" + join(m.names, ", --") + ")"};
    }
    bool has_value = eq != std::string_view::npos;
    a = "--" + m.names[0] + (has_value ? std::string(body.substr(eq)) : "");
    if (m.option->get_expected_min() > 0 && !has_value) ++i; // the next word is its value
  }
  return std::nullopt;
}

} // namespace

std::optional<OptionError> parse_command_line(CLI::App& app, const std::vector<std::string>& args,
                                              bool take_tail, CommandLine* line) {
  std::vector<std::string> options = args;
  CommandLine parsed;
  if (take_tail) {
    auto dashdash = std::find(options.begin(), options.end(), "--");
    if (dashdash != options.end()) {
      parsed.has_dashdash = true;
      parsed.tail.assign(dashdash + 1, options.end());
      options.erase(dashdash, options.end());
    }
  }
  if (auto err = spell_out(app, options)) return err;
  try {
    std::vector<std::string> reversed(options.rbegin(), options.rend()); // as CLI11 takes them
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return OptionError{OptionError::Kind::help, e.what()};
  } catch (const CLI::ParseError& e) {
    return OptionError{OptionError::Kind::value, e.what()};
  }
  if (line) *line = std::move(parsed);
  return std::nullopt;
}

std::vector<AppletOption> declared_options(const CLI::App& app) {
  std::vector<AppletOption> out;
  for (const CLI::Option* o : app.get_options())
    for (const std::string& name : o->get_lnames())
      out.push_back({name, o->get_group().empty()});
  return out;
}

int usage_error(std::string_view applet, const std::string& message, const std::string& usage) {
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(applet.size()), applet.data(),
               message.c_str());
  if (!usage.empty()) std::fprintf(stderr, "\n%s", usage.c_str());
  return kExitUsage;
}

int print_version(std::string_view applet) {
  std::printf("%.*s %.*s\n", static_cast<int>(applet.size()), applet.data(),
              static_cast<int>(version().size()), version().data());
  return kExitOk;
}

} // namespace cx::applets
