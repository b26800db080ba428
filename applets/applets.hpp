// The applet entry points. Each lives in its own file in applets/ and is listed once in the
// table in applets/multicall.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

// One long option as an applet's parser declares it: its name without dashes, and whether it
// is hidden (an option for our own re-executed children, which must be spelled out).
struct AppletOption {
  std::string name;
  bool hidden = false;
};

// What each applet's command line knows, read from the same tables and CLI::App declarations
// its parser uses, so that nothing can be added there without showing up here. The man-page
// test (test/unit/applets/manpage_test.cpp) compares them with docs/man/.
struct AppletInterface {
  std::string name;                  // the canonical applet name, e.g. "ctrl-exec-agent"
  std::vector<AppletOption> options; // long options
  std::vector<std::string> modes;    // mode words, hidden ones included
};

int agent_main(int argc, char** argv);
int api_main(int argc, char** argv);
int dispatcher_main(int argc, char** argv);
int exec_main(int argc, char** argv);
int pairing_main(int argc, char** argv);
AppletInterface agent_interface();
AppletInterface api_interface();
AppletInterface dispatcher_interface();
AppletInterface exec_interface();
AppletInterface pairing_interface();

// The multi-call binary itself (applets/multicall.cpp): its entry point, the applet names with
// their aliases (name, canonical name), and every applet's interface, the binary's own first.
int multicall_main(int argc, char** argv);
std::vector<std::pair<std::string, std::string>> applet_names();
std::vector<AppletInterface> applet_interfaces();
