// The API's run book; see run_book.hpp.
#include "api/run_book.hpp"

#include <unistd.h>

#include "log/log.hpp"

namespace cx::api {

RunBook::~RunBook() {
  if (!lock_.id().empty())
    (void)::unlink(state::api_instance_lock_path(runs_dir_, lock_.id()).c_str());
}

void RunBook::start(event::Loop& loop, const std::string& runs_dir) {
  runs_dir_ = runs_dir;
  if (Status st = lock_.acquire(runs_dir); !st.ok())
    log::warning("run-store-fail", {{"ERROR", st.message()}, {"REQID", "(none)"}});
  state::RunStore store(runs_dir);
  event::queue_work(
      loop, [store] { (void)store.settle_all_abandoned(); }, [] {});
}

} // namespace cx::api
