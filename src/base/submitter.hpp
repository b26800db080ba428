// Who submitted a request through the API: the name the client gave and the address it came
// from. The auth hook is shown it, and a run record keeps it so that /status answers only its
// owner; it lives down here because both sides use it and neither depends on the other.
#pragma once

#include <string>

namespace cx {

struct Submitter {
  std::string username, source_ip;
};

} // namespace cx
