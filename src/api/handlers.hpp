// The route handlers of the API (dispatcher-and-api §6.5). Each one runs after the pre-route
// auth gate has allowed the request, and answers exactly once through its Exchange.
#pragma once

namespace cx::api {

class Exchange;

void handle_index(Exchange& ex);
void handle_health(Exchange& ex);
void handle_openapi(Exchange& ex);

} // namespace cx::api
