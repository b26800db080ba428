// `ced state export` / `ced state import` (ours, issue 17): the dispatcher's lasting state as
// one JSON document, read from and written to whichever backend is in use (the files, or the
// shared store of state/kv.hpp), so that state moves between the two:
//   {"ctrl_exec_state":1, "agents":{name:record}, "pairing":{id:request},
//    "runs":{reqid:record}, "rotation":{...}|null}
// Locks are not part of it (they belong to running processes), nor are pairing answers (they
// belong to a listener holding its agent's connection), nor secrets (the CA key and the
// dispatcher's key stay files on each dispatcher).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.hpp"

namespace cx::state {

struct StatePaths {
  std::string registry_dir, pairing_dir, runs_dir, rotation_file;
};

// The document, compact, from the backend in use. Errors name what could not be read.
Result<std::string> export_state(const StatePaths& paths);

// What importing a document finds, per kind: absent here (new), present and different
// (changed), or the same (unchanged).
struct ImportTally {
  size_t added = 0, changed = 0, unchanged = 0;
};
struct ImportReport {
  ImportTally agents, pairing, runs, rotation;
};

// Compares the document with the backend in use and, with `apply`, writes what is new or
// changed (each item atomically; running it again finds everything unchanged). Errors name the
// item and the backend; a document that is not this format is refused before anything is
// written.
Result<ImportReport> import_state(std::string_view document, const StatePaths& paths, bool apply);

} // namespace cx::state
