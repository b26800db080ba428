// libFuzzer target: the executor's request and response frames; see wire_fuzz.hpp for the
// invariants. The same checks replay the corpus in test/unit/fuzz_corpus_test.cpp.
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/wire_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_executor_frames(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "executor frame invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
