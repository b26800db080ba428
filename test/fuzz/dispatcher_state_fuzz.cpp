// libFuzzer target: the dispatcher's JSON state files (registry, queue, runs, rotation); see
// state_fuzz.hpp for the invariants. The same checks replay the corpus in
// test/unit/fuzz_corpus_test.cpp.
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/state_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_dispatcher_state_text(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "dispatcher state invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
