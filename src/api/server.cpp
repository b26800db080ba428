// The API server: listener, admission, the pre-route auth gate, routing, graceful stop; see
// api.hpp. Route handlers live in handlers.cpp.
#include <netdb.h>
#include <sys/socket.h>

#include <csignal>
#include <cstdio>

#include "api/api.hpp"
#include "api/request.hpp"
#include "api/routes.hpp"
#include "base/files.hpp"
#include "base/hostname.hpp"
#include "base/paths.hpp"
#include "base/strings.hpp"
#include "base/time.hpp"
#include "cli/cli.hpp"
#include "event/address.hpp"
#include "log/log.hpp"

namespace cx::api {

// --- Tuning ----------------------------------------------------------------------------------

Tuning tuning_from(const conf::DispatcherConfig& config,
                   std::vector<conf::ConfigWarning>& warnings) {
  Tuning t;
  // api_max_children below 1 would refuse every request; the original's cap needs at least one.
  t.max_busy = static_cast<size_t>(std::max<int64_t>(1, config.api_max_children));
  // Idle keep-alive connections and clients still sending are bounded separately from the
  // requests in progress: four connections per request slot, unless set.
  t.max_connections = t.max_busy * 4;
  conf::IntReader ints(config.raw, warnings);
  auto seconds = [&](const char* key, uint64_t& out_ms) {
    if (auto v = ints.read(key, 1, 86400, std::to_string(out_ms / 1000)))
      out_ms = static_cast<uint64_t>(*v) * 1000;
  };
  ints.read_into("api_max_connections", t.max_connections, 1);
  ints.read_into("api_max_connections_per_ip", t.max_connections_per_ip, 1);
  ints.read_into("api_max_handshakes_per_ip", t.max_handshakes_per_ip, 1);
  seconds("api_request_timeout", t.request_timeout_ms);
  seconds("api_request_head_timeout", t.head_timeout_ms);
  seconds("api_request_body_timeout", t.body_timeout_ms);
  seconds("api_keepalive_timeout", t.keep_alive_idle_ms);
  seconds("api_shutdown_grace", t.shutdown_grace_ms);
  if (const std::string* v = conf::find_value(config.raw, "api_metrics_open")) {
    std::string s = to_lower(trim(*v));
    if (s == "yes" || s == "1" || s == "true" || s == "on")
      t.metrics_open = true;
    else if (!(s == "no" || s == "0" || s == "false" || s == "off"))
      warnings.push_back({"api_metrics_open", "not yes or no: '" + *v + "', using no"});
  }
  return t;
}

// --- Exchange --------------------------------------------------------------------------------

Exchange::Exchange(Api& a, uint64_t i, std::shared_ptr<http::Connection> conn, http::Request& req)
    : api(a), id(i), method(to_upper(req.method)), path(req.path), body(std::move(req.body)),
      peer_ip(conn->peer_ip()), bearer(bearer_token(req)),
      idempotency_key(read_idempotency_key(req)), conn_(std::move(conn)), gate_(a.loop()),
      sse_(accepts_event_stream(req)) {}

Exchange::~Exchange() = default;

void Exchange::respond(int code, std::string_view text, std::string_view content_type) {
  if (answered_) return;
  if (streaming_) return end_stream(std::string(text)); // the head went out already
  answered_ = true;
  api.metrics().answered(route, code);
  // While stopping, a keep-alive client is told to go: the connection closes after this.
  conn_->respond(code, text, !api.stopping(), content_type);
  api.release(id);
}

void Exchange::begin_stream() {
  if (answered_ || streaming_) return;
  streaming_ = true;
  stream_started_ms_ = monotonic_ms();
  api.metrics().answered(route, 200);
  conn_->begin_stream(200, sse_ ? "text/event-stream" : "application/x-ndjson");
}

void Exchange::event(std::string_view name, const std::string& json) {
  if (!streaming_ || answered_) return;
  if (sse_)
    conn_->send("event: " + std::string(name) + "\ndata: " + json + "\n\n");
  else
    conn_->send(json + "\n");
}

void Exchange::end_stream(const std::string& json) {
  if (!streaming_ || answered_) return;
  event("summary", json);
  answered_ = true;
  conn_->finish();
  api.release(id);
}

uint64_t Exchange::stream_ms() const {
  return streaming_ ? monotonic_ms() - stream_started_ms_ : 0;
}

void Exchange::fail(int code, std::string_view error, std::string_view detail) {
  respond(code, error_body(error, detail));
}

void Exchange::authorize(hook::Request req, DecisionFn then) {
  req.source_ip = peer_ip;
  gate_.ask(api.policy(), std::move(req),
            [this, then = std::move(then)](const hook::Decision& d) { then(*this, d); });
}

void Exchange::deny(const hook::Decision& d) {
  respond(403, denial_body(d.reason, d.code, api.config().auth_deny_generic));
}

// --- Api -------------------------------------------------------------------------------------

Api::Api(event::Loop& loop, conf::DispatcherConfig config, Tuning tuning)
    : loop_(loop), config_(std::move(config)), tuning_(tuning),
      registry_(config_.registry_dir.empty() ? paths::registry_dir() : config_.registry_dir),
      drain_timer_(loop) {
  engine_ = std::make_unique<engine::Engine>(loop_, config_,
                                             std::make_shared<engine::MemorySessionStore>());
  engine_->observe_results([this](std::string_view path, const engine::HostResult& r) {
    metrics_.host_result(path, r);
  });
}

Api::~Api() {
  // Exchanges go first: they hold connections of the server.
  exchanges_.clear();
  server_.reset();
  engine_.reset();
}

hook::Policy Api::policy() const {
  hook::Policy p;
  p.hook_path = config_.auth_hook.value_or("");
  p.timeout_s = static_cast<unsigned>(std::max<int64_t>(0, config_.auth_hook_timeout));
  p.api_default_allow = config_.api_auth_allow;
  p.caller = hook::Caller::api;
  return p;
}

namespace {

// api_bind as an IP literal: the original's socket layer also accepted a host name.
Result<std::string> bind_address(const std::string& bind) {
  if (event::SockAddr::from_ip(bind, 0)) return bind;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(bind.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) return error("cannot resolve '" + bind + "': " + ::gai_strerror(rc));
  std::string ip = event::SockAddr::from_sockaddr(res->ai_addr, res->ai_addrlen).ip();
  ::freeaddrinfo(res);
  return ip;
}

bool is_loopback(const std::string& ip) {
  return ip.rfind("127.", 0) == 0 || ip == "::1" || ip.rfind("::ffff:127.", 0) == 0;
}

// The route's label in the metrics.
std::string route_label(std::string_view method, std::string_view path) {
  auto m = match_route(method, path);
  if (!m) return "unmatched";
  return std::string(m->route->method) + " " + std::string(m->route->path);
}

std::string without_prefix(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}

} // namespace

Status Api::start() {
  const std::string where = config_.api_bind + ":" + std::to_string(config_.api_port);
  // TLS only when both files are configured and present. The original fell back to plain
  // HTTP silently; we still fall back, but say so (docs/COMPATIBILITY.md).
  if (config_.api_cert || config_.api_key) {
    std::vector<std::pair<const char*, std::string>> missing;
    if (!config_.api_cert)
      missing.push_back({"api_cert", ""});
    else if (!path_exists(*config_.api_cert))
      missing.push_back({"api_cert", *config_.api_cert});
    if (!config_.api_key)
      missing.push_back({"api_key", ""});
    else if (!path_exists(*config_.api_key))
      missing.push_back({"api_key", *config_.api_key});
    for (const auto& [key, file] : missing)
      log::warning("api-tls-missing", {{"KEY", key},
                                       {"PATH", file},
                                       {"REASON", file.empty() ? "not set" : "file not found"},
                                       {"FALLBACK", "plain HTTP"}});
    if (missing.empty()) {
      auto creds = tls::Credentials::load(*config_.api_cert, *config_.api_key, "");
      start_exit_code_ = kExitConfig; // a certificate or key that does not load
      if (!creds.ok())
        return error("Cannot start TLS API server on " + where + ": " + creds.message());
      auto conf = tls::Config::server(*creds, tls::PeerCheck::none);
      if (!conf.ok())
        return error("Cannot start TLS API server on " + where + ": " + conf.message());
      tls_ = *conf;
      start_exit_code_ = 1;
    }
  }

  auto ip = bind_address(config_.api_bind);
  if (!ip.ok())
    return error(
        std::string(tls_ ? "Cannot start TLS API server on " : "Cannot start API server on ") +
        where + ": " + ip.message());

  metrics_open_ = tuning_.metrics_open && is_loopback(*ip);
  if (tuning_.metrics_open && !metrics_open_)
    log::warning("config-warn", {{"KEY", "api_metrics_open"},
                                 {"MSG", "ignored: api_bind " + *ip +
                                             " is not a loopback address; "
                                             "/metrics stays behind the auth gate"}});

  http::ServerOptions o;
  o.bind_ip = *ip;
  const std::string o_bind = *ip + ":" + std::to_string(config_.api_port);
  o.port = config_.api_port;
  o.tls = tls_;
  o.request_timeout_ms = tuning_.request_timeout_ms;
  o.handshake_timeout_ms = tuning_.request_timeout_ms;
  o.keep_alive_idle_ms = tuning_.keep_alive_idle_ms;
  o.allow_keep_alive = true;
  // Slow and idle clients are bounded at accept (per address, and in all by shedding the
  // oldest one not handling a request) and by the head and body deadlines; only requests
  // being handled take one of the max_busy slots (on_request).
  o.tuning.admission.max_connections = tuning_.max_connections;
  o.tuning.admission.max_pending_per_ip = tuning_.max_connections_per_ip;
  o.tuning.admission.max_handshakes_per_ip = tuning_.max_handshakes_per_ip;
  o.tuning.head_timeout_ms = tuning_.head_timeout_ms;
  o.tuning.body_timeout_ms = tuning_.body_timeout_ms;
  http::ServerHooks h;
  h.request = [this](const std::shared_ptr<http::Connection>& c, http::Request& r) {
    on_request(c, r);
  };
  h.bad_request = [this](const std::shared_ptr<http::Connection>& c, const http::RequestParser& p) {
    on_bad_request(c, p);
  };
  // One line a second per kind of event, with how many it stands for.
  h.crowding = [](const std::vector<http::EventTally::Entry>& events) {
    for (const auto& e : events) {
      std::string action = e.kind == "timeout" ? "api-request-timeout" : "api-conn-" + e.kind;
      log::warning(action,
                   {{"PEER", e.peer}, {"REASON", e.reason}, {"COUNT", std::to_string(e.count)}});
    }
  };
  server_ = std::make_unique<http::Server>(loop_, std::move(o), std::move(h));
  if (Status st = server_->listen(); !st.ok()) {
    server_.reset();
    return error(
        std::string(tls_ ? "Cannot start TLS API server on " : "Cannot start API server on ") +
        where + ": " + without_prefix(st.message(), o_bind + ": "));
  }

  // The dispatcher's own cert and key, for the agents: loaded now so that a problem shows at
  // startup. It is not fatal (the original only found out per request): the routes that reach
  // agents answer 500 naming the file until it is fixed, and the rest of the API works.
  if (Status st = engine_->init(); !st.ok())
    log::err("api-engine", {{"ERROR", st.message()}, {"PATH", "startup"}});

  // Records left `submitted` by API processes that are gone become `unknown`.
  runs_.start(loop_, paths::runs_dir());

  sigterm_ = std::make_unique<event::SignalWatcher>(loop_);
  sigint_ = std::make_unique<event::SignalWatcher>(loop_);
  CX_TRY(sigterm_->start(SIGTERM, [this](int) { begin_stop(); }));
  CX_TRY(sigint_->start(SIGINT, [this](int) { begin_stop(); }));

  log::info("api-start", {{"BIND", config_.api_bind},
                          {"PORT", std::to_string(config_.api_port)},
                          {"TLS", tls_ ? "yes" : "no"}});
  return {};
}

int Api::port() const {
  return server_ ? server_->port() : 0;
}

void Api::on_bad_request(const std::shared_ptr<http::Connection>& conn,
                         const http::RequestParser& parser) {
  auto [code, text] = framing_error(parser);
  metrics_.answered("malformed", code);
  conn->respond(code, text, false);
}

void Api::on_request(const std::shared_ptr<http::Connection>& conn, http::Request& req) {
  // busy_connections() counts this request too. Runs whose client has gone (they go on to
  // store their record) hold no connection any more but still count.
  size_t others = std::max(server_->busy_connections() - 1, exchanges_.size());
  if (others >= tuning_.max_busy) {
    log::warning("api-overload", {{"LIVE", std::to_string(others)}, {"PEER", conn->peer_ip()}});
    metrics_.answered(route_label(to_upper(req.method), req.path), 503);
    conn->respond(503, overload_body(), !stopping_);
    return;
  }
  uint64_t id = next_id_++;
  auto ex = std::make_shared<Exchange>(*this, id, conn, req);
  log::info("api-request", {{"LEN", std::to_string(ex->body.size())},
                            {"METHOD", ex->method},
                            {"PATH", ex->path},
                            {"PEER", ex->peer_ip}});
  ex->route = route_label(ex->method, ex->path);
  exchanges_[id] = ex;
  conn->on_close([this, id] {
    auto it = exchanges_.find(id);
    if (it != exchanges_.end() && !it->second->survives_disconnect()) release(id);
  });

  // Ours (docs/COMPATIBILITY.md): with api_metrics_open on a loopback bind, the scrape needs
  // no credentials.
  if (metrics_open_ && ex->route == "GET /metrics") {
    route(*ex);
    return;
  }
  // The pre-route gate (§6.4): every request, whatever its path, with action "api" and the
  // body's token.
  hook::Request gate;
  gate.action = "api";
  gate.token = gate_token(ex->body);
  ex->authorize(std::move(gate), [this](Exchange& e, const hook::Decision& d) {
    if (!d.allowed) {
      e.deny(d);
      return;
    }
    route(e);
  });
}

void Api::route(Exchange& ex) {
  auto m = match_route(ex.method, ex.path);
  if (!m) {
    ex.respond(404, no_route_body(ex.method, ex.path));
    return;
  }
  ex.param = std::move(m->param);
  m->route->handler(ex);
}

void Api::release(uint64_t id) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  loop_.defer_delete(std::move(it->second));
  exchanges_.erase(it);
  if (stopping_) check_drained();
}

// --- Stopping --------------------------------------------------------------------------------

void Api::begin_stop() {
  if (stopped_) return;
  if (stopping_) {
    finish_stop(); // a second signal: no more waiting
    return;
  }
  stopping_ = true;
  if (server_) server_->stop_accepting();
  grace_timer_ = std::make_unique<event::Timer>(loop_);
  grace_timer_->start(tuning_.shutdown_grace_ms, [this] {
    if (!exchanges_.empty())
      log::warning("api-stop-timeout", {{"INFLIGHT", std::to_string(exchanges_.size())}});
    finish_stop();
  });
  check_drained();
}

void Api::check_drained() {
  if (!exchanges_.empty() || stopped_) return;
  // From a later iteration: we may be inside a connection's callback right now.
  drain_timer_.start(0, [this] {
    if (exchanges_.empty()) finish_stop();
  });
}

void Api::finish_stop() {
  if (stopped_) return;
  stopped_ = true;
  exchanges_.clear(); // cancels hooks still running and drops their answers
  server_.reset();    // closes every connection, idle keep-alive ones included
  if (grace_timer_) grace_timer_->stop();
  sigterm_->stop();
  sigint_->stop();
  log::info("api-stop");
  if (on_stopped_) on_stopped_();
}

// --- The applet ------------------------------------------------------------------------------

int run(const std::string& config_path) {
  event::ignore_sigpipe();
  log::init("ctrl-exec-api");
  auto loaded = conf::load_dispatcher_config(config_path, short_hostname());
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.message().c_str());
    return kExitConfig;
  }
  std::vector<conf::ConfigWarning> warnings = loaded->warnings;
  Tuning tuning = tuning_from(loaded->config, warnings);
  for (const auto& w : warnings)
    log::warning("config-warn", {{"KEY", w.key}, {"MSG", w.message}});
  // The state backend (issue 17): the applet installs how to open it.
  if (const auto& open = cli::on_config_loaded()) {
    if (Status st = open(loaded->config); !st.ok()) {
      std::fprintf(stderr, "Config error in '%s': %s\n", config_path.c_str(), st.message().c_str());
      return kExitConfig;
    }
  } else if (loaded->config.state_backend != "files") {
    std::fprintf(stderr, "Config error in '%s': state_backend = %s is not supported here\n",
                 config_path.c_str(), loaded->config.state_backend.c_str());
    return kExitConfig;
  }

  event::Loop loop;
  auto api = std::make_unique<Api>(loop, std::move(loaded->config), tuning);
  if (Status st = api->start(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.message().c_str());
    return api->start_exit_code();
  }
  std::printf("ctrl-exec API listening on %s:%d (%s)\n", api->config().api_bind.c_str(),
              api->config().api_port, api->tls() ? "TLS" : "plain HTTP");
  std::fflush(stdout);
  api->on_stopped([&loop] { loop.stop(); });
  loop.run();
  api.reset();
  std::printf("\nAPI server stopped.\n");
  std::fflush(stdout);
  return 0;
}

} // namespace cx::api
