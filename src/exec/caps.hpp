// Linux capability names (CAP_CHOWN ...) and their numbers, without libcap: the executor
// needs only the mapping, and the table follows <linux/capability.h>.
#pragma once

#include <optional>
#include <string_view>

namespace cx::exec {

// The number of a capability named as in <linux/capability.h>, or nullopt if unknown.
std::optional<int> capability_number(std::string_view name);

// The name of capability `number` ("CAP_CHOWN"), or "" past the table.
std::string_view capability_name(int number);

// The highest capability number the running kernel knows (probed with PR_CAPBSET_READ).
int kernel_last_capability();

} // namespace cx::exec
