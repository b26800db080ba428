// libFuzzer target: state files planted in a scratch directory and read by the real loaders; see
// state_fuzz.hpp for the invariants. The same checks replay the corpus in
// test/unit/fuzz_corpus_test.cpp.
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/state_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_state_files(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "state files invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
