// The "ask the auth hook, then act" step shared by the API (every Exchange) and the agent
// (/run, /capabilities, /rotate-serial). A Gate belongs to one request: it owns the checks it
// starts and delivers each decision only while it lives and has not been cancelled, so a
// client that goes away (its request is released, or cancel() is called when its connection
// closes) kills the hook and its decision is never acted on.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "event/loop.hpp"
#include "hook/hook.hpp"

namespace cx::hook {

class Gate {
public:
  using DecisionFn = std::function<void(const Decision&)>;

  explicit Gate(event::Loop& loop) : loop_(loop) { live_.emplace(); }
  ~Gate() = default; // destroying the checks kills their hooks and drops their decisions
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Starts a check of `req` under `policy` (see Check::start: the decision table, the `auth`
  // line). `then` runs once, from the loop, unless the Gate is destroyed or cancelled first.
  void ask(const Policy& policy, Request req, DecisionFn then);
  // Kills the hooks still running and drops their decisions. Safe inside `then`: the checks are
  // destroyed on a later loop iteration, never under their own callbacks. The Gate may ask again.
  void cancel();
  // A check has started and its decision has not been delivered (nor cancelled).
  bool pending() const { return waiting_ > 0; }

private:
  event::Loop& loop_;
  std::vector<std::unique_ptr<Check>> checks_;
  std::optional<event::Liveness> live_; // re-made by cancel(): older decisions see it gone
  size_t waiting_ = 0;
};

} // namespace cx::hook
