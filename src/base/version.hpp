// The release version, stamped at build time from meson.build's project() version.
#pragma once

#include <string_view>

namespace cx {
std::string_view version();
}
