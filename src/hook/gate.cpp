// The per-request auth gate; see gate.hpp.
#include "hook/gate.hpp"

namespace cx::hook {

void Gate::ask(const Policy& policy, Request req, DecisionFn then) {
  ++waiting_;
  // The Check is kept until the Gate goes (or cancel()): it is never freed inside its own
  // callback. The watch silences a decision that arrives after cancel().
  checks_.push_back(
      Check::start(loop_, policy, std::move(req),
                   [this, watch = live_->watch(), then = std::move(then)](Decision d) {
                     if (watch.gone()) return;
                     --waiting_;
                     then(d);
                   }));
}

void Gate::cancel() {
  live_->kill();
  live_.emplace();
  for (auto& check : checks_)
    loop_.defer_delete(std::move(check));
  checks_.clear();
  waiting_ = 0;
}

} // namespace cx::hook
