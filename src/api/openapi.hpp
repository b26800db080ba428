// The API's OpenAPI 3.1 document, assembled once from the route table and the component
// schemas built into the binary (dispatcher-and-api §6.5, §6.6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "json/json.hpp"

namespace cx::api {

// The static document, compact JSON. Its paths are exactly the route table's; info.version is
// our version. Built on first use and then served byte for byte.
const std::string& static_document();

} // namespace cx::api
