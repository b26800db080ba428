// Stamped version; see version.hpp.
#include "base/version.hpp"

#include "cx_version.h"

namespace cx {
std::string_view version() {
  return CX_VERSION;
}
} // namespace cx
