// libFuzzer target: the json parsers; see parsers_fuzz.hpp for the invariants. The same checks
// replay the corpus in test/unit/fuzz_corpus_test.cpp.
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/parsers_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_json_text(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "json invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
