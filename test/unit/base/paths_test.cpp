// Tests for src/base/paths.cpp. CTRL_EXEC_ROOT is read once per process, so this checks the
// shape of every default against whatever root the test runs under.
#include <catch2/catch.hpp>

#include "base/paths.hpp"

using namespace cx::paths;

TEST_CASE("default paths sit under the root", "[base]") {
  const std::string& r = root();
  CHECK(dispatcher_config() == r + "/etc/ctrl-exec/ctrl-exec.conf");
  CHECK(registry_dir() == r + "/var/lib/ctrl-exec/agents");
  CHECK(agent_config() == r + "/etc/ctrl-exec-agent/agent.conf");
  CHECK(agent_trusted_map() == r + "/var/lib/ctrl-exec-agent/ctrl-exec-dispatchers");
  CHECK(agent_exec_socket() == r + "/run/ctrl-exec-agent/exec.sock");
  CHECK(kAgentPort == 7443);
  CHECK(kPairingPort == 7444);
  CHECK(kApiPort == 7445);
}
