// Aggregation of a stored run (dispatcher-and-api §3.3): an async record's pending hosts are
// asked for their results and the record is rewritten. Used by `status`, `wait` and the API's
// GET /status.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine.hpp"
#include "event/loop.hpp"
#include "state/run_store.hpp"
#include "json/json.hpp"

namespace cx::engine {

using RecordFn = std::function<void(std::optional<json::Document>)>;

// Loads `reqid`'s record. A record with a top-level status (submitted or unknown: written by
// the API before its dispatch ended) is handed over unchanged, once a submitted one whose API
// process is gone has been marked unknown. A sync record is handed over unchanged. For an async
// record every accepted/running host is fetched (GET /result/<reqid>, at resolve_target(name) with
// the engine's default port), the transitions applied, pending/complete recomputed and the record
// rewritten (run-store-fail is logged if that fails). nullopt when there is no such record.
void aggregate_run(Engine& engine, const state::RunStore& store, const std::string& reqid,
                   RecordFn done);

// Stores a record, logging run-store-fail (WARNING, ERROR REQID) when it cannot be written:
// the request itself carries on, as in the original. The atomic write (with its fsync) runs on
// libuv's thread pool so that it never stalls the loop (the API serves everyone from it);
// `done` then runs on the loop.
void store_record(event::Loop& loop, const state::RunStore& store, const std::string& reqid,
                  std::shared_ptr<const json::Document> record, std::function<void()> done);

} // namespace cx::engine
