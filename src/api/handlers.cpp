// The routes that need nothing but the server itself: the index, health and the static
// OpenAPI document (dispatcher-and-api §6.5).
#include "api/handlers.hpp"

#include "api/api.hpp"
#include "api/openapi.hpp"
#include "api/routes.hpp"
#include "base/version.hpp"
#include "json/writer.hpp"

namespace cx::api {

void handle_index(Exchange& ex) {
  json::Writer w;
  w.begin_object()
      .member("name", "ctrl-exec-api")
      .member("version", version())
      .member("spec", "/openapi.json")
      .member("live_spec", "/openapi-live.json")
      .key("endpoints")
      .begin_array();
  for (const Route& r : routes())
    if (r.listed) w.begin_object().member("method", r.method).member("path", r.path).end_object();
  w.end_array().end_object();
  ex.respond(200, w.str());
}

void handle_health(Exchange& ex) {
  json::Writer w;
  w.begin_object().member("ok", true).member("version", version()).end_object();
  ex.respond(200, w.str());
}

void handle_metrics(Exchange& ex) {
  ex.respond(200, ex.api.metrics().scrape(ex.api), metrics::kContentType);
}

void handle_openapi(Exchange& ex) {
  // Built into the binary, so it is always "installed" (the original could answer 404 here).
  ex.respond(200, static_document());
}

} // namespace cx::api
