// Schema sidecars (spec agent-and-wire §2.4): for an allowlisted script at P, the optional
// JSON object in P.schema.json that /capabilities reports, and its schema_version.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "conf/allowlist.hpp"
#include "json/json.hpp"

namespace cx::conf {

inline constexpr size_t kMaxSidecarBytes = 65536;

struct Sidecar {
  std::string schema_json;    // the body, compact (cx::json::to_string), to embed as is
  std::string schema_version; // explicit, or "sha256:" + 12 hex
};

struct SidecarLoad {
  std::optional<Sidecar> sidecar;           // absent when there is no usable sidecar
  std::optional<std::string> skip_reason;   // for `schema-skip SCRIPT REASON`
  std::optional<std::string> derive_reason; // for `schema-version-derive SCRIPT REASON`
};

// Reads `<script_path>.schema.json`. No file: nothing, silently. Skipped with a reason when it
// is larger than kMaxSidecarBytes, unreadable, not JSON, or not a JSON object.
SidecarLoad load_sidecar(const std::string& script_path);

// "sha256:" + the first 12 lowercase hex digits of SHA-256 over cx::json::canonical(body).
std::string derived_schema_version(const json::Value& body);

// The body's `version` when it is a scalar whose Perl string form matches
// ^[A-Za-z0-9._-]{1,64}$ and does not start with "sha256:"; otherwise the derived version. A
// `version` that is present but unusable sets `derive_reason`.
std::string schema_version(const json::Value& body, std::optional<std::string>* derive_reason);

// One log event for the caller: action is "schema-skip" or "schema-version-derive".
struct SidecarEvent {
  std::string action;
  std::string script; // the allowlist name
  std::string reason;
};

struct SidecarSet {
  std::map<std::string, Sidecar> by_script; // allowlist name -> sidecar
  std::vector<SidecarEvent> events;
};

// Loads the sidecars of every allowlisted script.
SidecarSet load_sidecars(const Allowlist& scripts);

} // namespace cx::conf
