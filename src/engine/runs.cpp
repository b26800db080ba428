// Aggregation of stored runs; see runs.hpp.
#include "engine/runs.hpp"

#include <memory>

#include "log/log.hpp"

namespace cx::engine {

void store_record(event::Loop& loop, const state::RunStore& store, const std::string& reqid,
                  std::shared_ptr<const json::Document> record, std::function<void()> done) {
  auto status = std::make_shared<Status>();
  event::queue_work(
      loop, [store, reqid, record, status] { *status = store.save(reqid, *record); },
      [reqid, status, done = std::move(done)] {
        if (!status->ok())
          log::warning("run-store-fail", {{"ERROR", status->message()}, {"REQID", reqid}});
        if (done) done();
      });
}

void aggregate_run(Engine& engine, const state::RunStore& store, const std::string& reqid,
                   RecordFn done) {
  auto record = store.load(reqid);
  if (!record) return done(std::nullopt);
  // A record written before its dispatch ended (submitted, or unknown since) has nothing to
  // fetch yet; one whose API process is gone is settled as unknown first.
  if (!state::run_state(*record).empty()) {
    (void)store.settle_abandoned(reqid, *record);
    return done(std::move(record));
  }
  if (state::is_sync_record(*record)) return done(std::move(record));
  auto shared = std::make_shared<json::Document>(std::move(*record));
  std::vector<std::string> pending = state::pending_hosts(*shared);
  event::Loop& loop = engine.loop();
  auto settle = [&loop, store, reqid, shared, done](Results fetched) {
    for (const auto& r : fetched)
      state::apply_fetch(*shared, r.name, r.doc);
    state::recompute_pending(*shared);
    store_record(loop, store, reqid, shared, [shared, done] {
      json::Document copy;
      copy.CopyFrom(*shared, copy.GetAllocator());
      done(std::move(copy));
    });
  };
  if (pending.empty()) return settle({});
  auto targets = std::make_shared<std::vector<state::DispatchTarget>>();
  for (const auto& name : pending)
    targets->push_back({name, engine.registry().resolve_target(name)});
  run_batched(
      targets, 0,
      [&engine, reqid](const std::vector<state::DispatchTarget>& batch, ResultsFn d) {
        return engine.fetch_results(batch, reqid, std::move(d));
      },
      std::make_shared<Results>(), settle);
}

} // namespace cx::engine
