// libFuzzer target: HTTP requests fed in input-derived chunks; see http_fuzz.hpp for the
// invariants. The same checks replay the corpus in the unit tests (test/unit/http).
#include <cstdio>
#include <cstdlib>

#include "test/fuzz/http_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string broken = cx::fuzz::check_http_request_stream(data, size);
  if (!broken.empty()) {
    std::fprintf(stderr, "http request invariant broken: %s\n", broken.c_str());
    std::abort();
  }
  return 0;
}
