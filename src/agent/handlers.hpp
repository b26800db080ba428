// The handlers of the 7443 endpoints (agent-and-wire §3.4), in handle_*.cpp (renew and
// renew-complete share one; the async side of /run is handle_run_async.cpp).
// Each answers its Call's client exactly once, now or when its work completes; the route table
// (routes.hpp) says which method and path reach which one.
#pragma once

#include "agent/context.hpp"

namespace cx::agent {

void handle_ping(Context& ctx, Call& call);           // POST /ping
void handle_capabilities(Context& ctx, Call& call);   // GET /capabilities
void handle_result(Context& ctx, Call& call);         // GET /result/<reqid>
void handle_rotate(Context& ctx, Call& call);         // POST /rotate-serial
void handle_renew(Context& ctx, Call& call);          // POST /renew
void handle_renew_complete(Context& ctx, Call& call); // POST /renew-complete
void handle_run(Context& ctx, Call& call);            // POST /run (sync, or async: run_job.hpp)

} // namespace cx::agent
