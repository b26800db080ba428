// The multi-call binary: dispatch on basename(argv[0]), else on argv[1], busybox-style.
// `ctrl-exec --list`, `--install DIR`, `--completion DIR` and `--version` are answered here.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "applets/applets.hpp"
#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/version.hpp"
#include "cx_bash_completion.h"

namespace {

struct Applet {
  std::string_view name;      // what argv[0] or argv[1] may be
  std::string_view canonical; // the applet's own name, used by --list
  int (*main)(int, char**);
  AppletInterface (*interface)(); // its options and modes (applets.hpp)
};

// Sorted by name (checked at compile time); aliases point at the same entry point.
constexpr std::array kApplets{
    Applet{"cea", "ctrl-exec-agent", agent_main, agent_interface},
    Applet{"ced", "ctrl-exec-dispatcher", dispatcher_main, dispatcher_interface},
    Applet{"ctrl-exec-agent", "ctrl-exec-agent", agent_main, agent_interface},
    Applet{"ctrl-exec-api", "ctrl-exec-api", api_main, api_interface},
    Applet{"ctrl-exec-dispatcher", "ctrl-exec-dispatcher", dispatcher_main, dispatcher_interface},
    Applet{"ctrl-exec-exec", "ctrl-exec-exec", exec_main, exec_interface},
    Applet{"ctrl-exec-pairing", "ctrl-exec-pairing", pairing_main, pairing_interface},
};
static_assert(std::is_sorted(kApplets.begin(), kApplets.end(),
                             [](const Applet& a, const Applet& b) { return a.name < b.name; }));

// The binary's own options, when argv[1] is not an applet name. `value` names the argument an
// option takes (nullptr: none).
struct TopOption {
  std::string_view name;
  const char* value;
};
constexpr TopOption kTopOptions[] = {
    {"--completion", "DIR"}, {"--help", nullptr},    {"--install", "DIR"},
    {"--list", nullptr},     {"--version", nullptr},
};

const Applet* find_applet(std::string_view name) {
  auto it = std::lower_bound(kApplets.begin(), kApplets.end(), name,
                             [](const Applet& a, std::string_view n) { return a.name < n; });
  return (it != kApplets.end() && it->name == name) ? &*it : nullptr;
}

void print_usage(FILE* out) {
  std::fprintf(
      out,
      "ctrl-exec %.*s - remote script execution over mutual TLS\n"
      "\n"
      "Usage: ctrl-exec <applet> [arguments...]\n"
      "       <applet> [arguments...]        (through a symlink named after the applet)\n"
      "       ctrl-exec --list               list the applets and their aliases\n"
      "       ctrl-exec --install DIR        create a symlink in DIR for every applet\n"
      "       ctrl-exec --completion DIR     write the bash completion script to\n"
      "                                      DIR/ctrl-exec, and a symlink to it for\n"
      "                                      every applet name (may follow --install DIR)\n"
      "       ctrl-exec --version            print the version\n"
      "\n"
      "Applets:\n",
      static_cast<int>(cx::version().size()), cx::version().data());
  for (const auto& a : kApplets)
    if (a.name == a.canonical)
      std::fprintf(out, "  %.*s\n", static_cast<int>(a.name.size()), a.name.data());
  std::fprintf(out, "\nSee ctrl-exec(1) and the page of each applet.\n");
}

void print_list() {
  for (const auto& a : kApplets) {
    if (a.name == a.canonical)
      std::printf("%.*s\n", static_cast<int>(a.name.size()), a.name.data());
    else
      std::printf("%.*s -> %.*s\n", static_cast<int>(a.name.size()), a.name.data(),
                  static_cast<int>(a.canonical.size()), a.canonical.data());
  }
}

// Creates (or re-points) DIR/<name> -> `target` for every applet name. Running it twice leaves
// the same links; a regular file in the way is an error, never overwritten. Returns how many
// links failed.
int link_applet_names(const std::string& dir, const std::string& target, const char* option) {
  int failures = 0;
  for (const auto& a : kApplets) {
    std::string link = dir + "/" + std::string(a.name);
    struct stat st;
    if (::lstat(link.c_str(), &st) == 0) {
      if (!S_ISLNK(st.st_mode)) {
        std::fprintf(stderr, "ctrl-exec: %s: '%s' exists and is not a symlink; left alone\n",
                     option, link.c_str());
        ++failures;
        continue;
      }
      char cur[PATH_MAX];
      ssize_t m = ::readlink(link.c_str(), cur, sizeof cur - 1);
      if (m > 0 && std::string_view(cur, static_cast<size_t>(m)) == target) continue;
    }
    std::string tmp = link + ".ctrl-exec-new";
    ::unlink(tmp.c_str());
    if (::symlink(target.c_str(), tmp.c_str()) != 0 || ::rename(tmp.c_str(), link.c_str()) != 0) {
      std::fprintf(stderr, "ctrl-exec: %s: cannot create '%s': %s\n", option, link.c_str(),
                   std::strerror(errno));
      ::unlink(tmp.c_str());
      ++failures;
    }
  }
  return failures;
}

bool check_directory(const std::string& dir, const char* option) {
  if (cx::is_directory(dir)) return true;
  std::fprintf(stderr, "ctrl-exec: %s: '%s' is not a directory\n", option, dir.c_str());
  return false;
}

// Creates (or re-points) DIR/<name> -> this binary for every applet name.
int install_links(const std::string& dir) {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    std::fprintf(stderr, "ctrl-exec: --install: cannot find this binary: %s\n",
                 std::strerror(errno));
    return cx::kExitFailure;
  }
  self[n] = '\0';
  std::string exe = self;
  if (!check_directory(dir, "--install")) return cx::kExitFailure;
  // A link next to the binary is relative, so the pair can be copied or mounted elsewhere.
  auto dir_real = cx::real_path(dir);
  std::string target = (dir_real && *dir_real == cx::dirname(exe)) ? cx::basename(exe) : exe;
  return link_applet_names(dir, target, "--install") ? cx::kExitFailure : cx::kExitOk;
}

// Writes the bash completion script (conf/bash-completion/ctrl-exec, built in) to
// DIR/ctrl-exec, and DIR/<applet name> -> ctrl-exec for every other name, since
// bash-completion loads a completion by the command's name.
int install_completion(const std::string& dir) {
  if (!check_directory(dir, "--completion")) return cx::kExitFailure;
  std::string path = dir + "/ctrl-exec";
  cx::WriteOptions opts;
  opts.mode = 0644;
  if (cx::Status st = cx::write_file_atomic(path, std::string(kBashCompletion), opts); !st.ok()) {
    std::fprintf(stderr, "ctrl-exec: --completion: %s\n", st.message().c_str());
    return cx::kExitFailure;
  }
  return link_applet_names(dir, "ctrl-exec", "--completion") ? cx::kExitFailure : cx::kExitOk;
}

// The binary's own command line: the options of kTopOptions, each with its value.
struct TopCommand {
  std::optional<std::string> install, completion;
  bool help = false, version = false, list = false;
};

int top_usage_error(const std::string& message) {
  std::fprintf(stderr, "ctrl-exec: %s\n\n", message.c_str());
  print_usage(stderr);
  return cx::kExitUsage;
}

int multiplexer(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return cx::kExitUsage;
  }
  std::string_view first = argv[1];
  if (first.empty() || first[0] != '-') {
    const Applet* applet = find_applet(first);
    if (!applet) {
      std::fprintf(stderr, "ctrl-exec: unknown applet '%s' (try 'ctrl-exec --list')\n", argv[1]);
      return cx::kExitUsage;
    }
    return applet->main(argc - 1, argv + 1);
  }
  TopCommand cmd;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i] == std::string_view("-h") ? "--help" : argv[i];
    auto opt = std::find_if(std::begin(kTopOptions), std::end(kTopOptions),
                            [&](const TopOption& o) { return o.name == arg; });
    if (opt == std::end(kTopOptions))
      return top_usage_error(
          (arg.empty() || arg[0] != '-' ? "unexpected argument '" : "unknown option '") +
          std::string(arg) + "'");
    std::optional<std::string> value;
    if (opt->value) {
      if (i + 1 >= argc) return top_usage_error(std::string(arg) + " needs " + opt->value);
      value = argv[++i];
    }
    if (arg == "--help") cmd.help = true;
    if (arg == "--version") cmd.version = true;
    if (arg == "--list") cmd.list = true;
    if (arg == "--install") cmd.install = value;
    if (arg == "--completion") cmd.completion = value;
  }
  if (cmd.help) {
    print_usage(stdout);
    return cx::kExitOk;
  }
  if (cmd.version) {
    std::printf("ctrl-exec %.*s\n", static_cast<int>(cx::version().size()), cx::version().data());
    return cx::kExitOk;
  }
  if (cmd.list) {
    print_list();
    return cx::kExitOk;
  }
  int rc = cx::kExitOk;
  if (cmd.install) rc = install_links(*cmd.install);
  if (rc == cx::kExitOk && cmd.completion) rc = install_completion(*cmd.completion);
  return rc;
}

} // namespace

int multicall_main(int argc, char** argv) {
  std::string_view self = argc > 0 ? argv[0] : "ctrl-exec";
  if (auto slash = self.rfind('/'); slash != std::string_view::npos) self.remove_prefix(slash + 1);
  if (const Applet* applet = find_applet(self)) return applet->main(argc, argv);
  return multiplexer(argc, argv);
}

std::vector<std::pair<std::string, std::string>> applet_names() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& a : kApplets)
    out.emplace_back(a.name, a.canonical);
  return out;
}

std::vector<AppletInterface> applet_interfaces() {
  AppletInterface self{"ctrl-exec", {}, {}};
  for (const auto& o : kTopOptions)
    self.options.push_back({std::string(o.name.substr(2)), false});
  std::vector<AppletInterface> out{self};
  for (const auto& a : kApplets)
    if (a.name == a.canonical) out.push_back(a.interface());
  return out;
}
