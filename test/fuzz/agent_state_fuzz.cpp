// libFuzzer target: the agent's trusted-dispatcher map and revocation list; see state_fuzz.hpp for
// the invariants. The same checks replay the corpus in test/unit/fuzz_corpus_test.cpp.
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/state_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_agent_state_text(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "agent state invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
