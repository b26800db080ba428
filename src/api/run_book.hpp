// What the API keeps about the runs it dispatches, besides the engine: its lock in the run
// store, named in the records it writes before a dispatch (state/run_store.hpp), and the runs
// in flight under an Idempotency-Key (state/idempotency.hpp).
#pragma once

#include <map>
#include <string>

#include "event/loop.hpp"
#include "state/run_store.hpp"

namespace cx::api {

class RunBook {
public:
  RunBook() = default;
  // Removes the lock file (while still holding it): this process's submitted records, if any
  // are left, are then seen as abandoned at once.
  ~RunBook();
  RunBook(const RunBook&) = delete;
  RunBook& operator=(const RunBook&) = delete;

  // Takes the instance lock and then, on the thread pool, marks the submitted records of API
  // processes that are gone as unknown (WARNING api-run-unknown REQID for each). Without the
  // lock (the run store cannot be written) runs still go on; a WARNING says why.
  void start(event::Loop& loop, const std::string& runs_dir);
  // This process's id in the run store ("" without the lock).
  const std::string& instance() const { return lock_.id(); }

  // A keyed run between its claim and its stored answer, by the path of its index entry.
  struct Inflight {
    std::string reqid;
    bool async = false;
    std::string request; // as IdempotencyEntry::request
  };
  std::map<std::string, Inflight> inflight;

private:
  state::ApiInstanceLock lock_;
  std::string runs_dir_;
};

} // namespace cx::api
