// The multi-call entry point: dispatch on basename(argv[0]), else on argv[1], busybox-style.
// `ctrl-exec --list`, `--install DIR` and `--version` are answered here.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "applets/applets.hpp"
#include "base/exit_codes.hpp"
#include "base/files.hpp"
#include "base/version.hpp"

namespace {

struct Applet {
  std::string_view name;      // what argv[0] or argv[1] may be
  std::string_view canonical; // the applet's own name, used by --list
  int (*main)(int, char**);
};

// Sorted by name (checked at compile time); aliases point at the same entry point.
constexpr std::array kApplets{
    Applet{"cea", "ctrl-exec-agent", agent_main},
    Applet{"ced", "ctrl-exec-dispatcher", dispatcher_main},
    Applet{"ctrl-exec-agent", "ctrl-exec-agent", agent_main},
    Applet{"ctrl-exec-api", "ctrl-exec-api", api_main},
    Applet{"ctrl-exec-dispatcher", "ctrl-exec-dispatcher", dispatcher_main},
    Applet{"ctrl-exec-exec", "ctrl-exec-exec", exec_main},
    Applet{"ctrl-exec-pairing", "ctrl-exec-pairing", pairing_main},
};
static_assert(std::is_sorted(kApplets.begin(), kApplets.end(),
                             [](const Applet& a, const Applet& b) { return a.name < b.name; }));

const Applet* find_applet(std::string_view name) {
  auto it = std::lower_bound(kApplets.begin(), kApplets.end(), name,
                             [](const Applet& a, std::string_view n) { return a.name < n; });
  return (it != kApplets.end() && it->name == name) ? &*it : nullptr;
}

void print_usage(FILE* out) {
  std::fprintf(out,
               "ctrl-exec %.*s - remote script execution over mutual TLS\n"
               "\n"
               "Usage: ctrl-exec <applet> [arguments...]\n"
               "       <applet> [arguments...]        (through a symlink named after the applet)\n"
               "       ctrl-exec --list               list the applets and their aliases\n"
               "       ctrl-exec --install DIR        create a symlink in DIR for every applet\n"
               "       ctrl-exec --version            print the version\n"
               "\n"
               "Applets:\n",
               static_cast<int>(cx::version().size()), cx::version().data());
  for (const auto& a : kApplets)
    if (a.name == a.canonical)
      std::fprintf(out, "  %.*s\n", static_cast<int>(a.name.size()), a.name.data());
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

// Creates (or re-points) DIR/<name> -> this binary for every applet name. Running it twice
// leaves the same links; a regular file in the way is an error, never overwritten.
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
  if (!cx::is_directory(dir)) {
    std::fprintf(stderr, "ctrl-exec: --install: '%s' is not a directory\n", dir.c_str());
    return cx::kExitFailure;
  }
  // A link next to the binary is relative, so the pair can be copied or mounted elsewhere.
  auto dir_real = cx::real_path(dir);
  std::string target = (dir_real && *dir_real == cx::dirname(exe)) ? cx::basename(exe) : exe;
  int failures = 0;
  for (const auto& a : kApplets) {
    std::string link = dir + "/" + std::string(a.name);
    struct stat st;
    if (::lstat(link.c_str(), &st) == 0) {
      if (!S_ISLNK(st.st_mode)) {
        std::fprintf(stderr, "ctrl-exec: --install: '%s' exists and is not a symlink; left alone\n",
                     link.c_str());
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
      std::fprintf(stderr, "ctrl-exec: --install: cannot create '%s': %s\n", link.c_str(),
                   std::strerror(errno));
      ::unlink(tmp.c_str());
      ++failures;
    }
  }
  return failures ? cx::kExitFailure : cx::kExitOk;
}

int multiplexer(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return cx::kExitUsage;
  }
  std::string_view arg = argv[1];
  if (arg == "--help" || arg == "-h") {
    print_usage(stdout);
    return 0;
  }
  if (arg == "--version") {
    std::printf("ctrl-exec %.*s\n", static_cast<int>(cx::version().size()), cx::version().data());
    return 0;
  }
  if (arg == "--list") {
    print_list();
    return 0;
  }
  if (arg == "--install") {
    if (argc != 3) {
      std::fprintf(stderr, "Usage: ctrl-exec --install DIR\n");
      return cx::kExitUsage;
    }
    return install_links(argv[2]);
  }
  const Applet* applet = find_applet(arg);
  if (!applet) {
    std::fprintf(stderr, "ctrl-exec: unknown applet '%s' (try 'ctrl-exec --list')\n", argv[1]);
    return cx::kExitUsage;
  }
  return applet->main(argc - 1, argv + 1);
}

} // namespace

int main(int argc, char** argv) {
  std::string_view self = argc > 0 ? argv[0] : "ctrl-exec";
  if (auto slash = self.rfind('/'); slash != std::string_view::npos) self.remove_prefix(slash + 1);
  if (const Applet* applet = find_applet(self)) return applet->main(argc, argv);
  return multiplexer(argc, argv);
}
