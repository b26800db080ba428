// The API's OpenAPI 3.1 document, assembled once from the route table and the component
// schemas built into the binary (dispatcher-and-api §6.5, §6.6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "json/json.hpp"

namespace cx::api {

// The static document, compact JSON. Its paths are exactly the route table's, its component
// schemas are the API bodies of proto/wire_schemas.hpp (which the tests validate real responses
// against); info.version is our version. Built on first use and then served byte for byte.
const std::string& static_document();

// The live document (§6.5 GET /openapi-live.json): the static one with
//  * properties.hosts.items.enum of the request schemas of /ping, /run and /discovery (followed
//    through their $ref) set to the sorted registry names, or null when there are none;
//  * RunRequest.properties.script.enum set to the sorted, distinct script names of the agents
//    that answered `status: ok` (`capabilities` are their /capabilities results), and a
//    top-level "x-ctrl-exec-scripts": {<script>: [{hosts, schema_version?, schema?}, ...]}
//    grouping each script's hosts by schema_version (no version first), each group carrying
//    the first schema seen for it verbatim; neither is added when no script was found;
//  * info.version: our version with any "+<digits>" suffix removed, then "+<now>".
std::string live_document(const std::vector<std::string>& hosts,
                          const std::vector<const json::Value*>& capabilities, int64_t now);

} // namespace cx::api
