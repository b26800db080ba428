// The route handlers of the API (dispatcher-and-api §6.5). Each one runs after the pre-route
// auth gate has allowed the request, and answers exactly once through its Exchange.
#pragma once

namespace cx::api {

class Exchange;

void handle_index(Exchange& ex);
void handle_health(Exchange& ex);
void handle_openapi(Exchange& ex);
void handle_metrics(Exchange& ex);
// The routes that reach agents, through the engine (fleet.cpp).
void handle_ping(Exchange& ex);
void handle_run(Exchange& ex);
void handle_discovery(Exchange& ex);
void handle_status(Exchange& ex);
void handle_openapi_live(Exchange& ex);

} // namespace cx::api
