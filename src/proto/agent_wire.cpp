// The JSON messages of port 7443; see agent_wire.hpp.
#include "proto/agent_wire.hpp"

#include "json/writer.hpp"

namespace cx::proto {

namespace {

std::string error_body(std::string_view error) {
  json::Writer w;
  w.begin_object().member("error", error).end_object();
  return w.str();
}

// A scalar element read the way Perl stringifies it, or nullopt for arrays and objects.
std::optional<std::string> loose_scalar(const json::Value& v) {
  if (v.IsNull()) return std::string();
  if (v.IsBool()) return std::string(v.GetBool() ? "1" : "0");
  return json::scalar_string(v);
}

// Parses a request body leniently: nullptr unless it is a JSON object.
struct LooseBody {
  json::Document doc;
  bool is_object = false;
};
LooseBody parse_loose(std::string_view body) {
  LooseBody b;
  auto parsed = json::parse(body);
  if (parsed.ok() && parsed->IsObject()) {
    b.doc = std::move(*parsed);
    b.is_object = true;
  }
  return b;
}

// Reply readers: absent members take the default, wrong types fail naming the field.
Status read_opt(const json::Value& v, const char* field, std::optional<std::string>& out) {
  auto r = json::get_optional_string(v, field);
  if (!r.ok()) return r.status();
  out = std::move(*r);
  return {};
}
Status read_str(const json::Value& v, const char* field, std::string& out) {
  auto r = json::get_string_or(v, field, out);
  if (!r.ok()) return r.status();
  out = std::move(*r);
  return {};
}
Status read_flag(const json::Value& v, const char* field, bool& out) {
  // Perl peers may send 1/0 or "1" for booleans; read flags by Perl truth.
  if (const json::Value* m = json::find(v, field)) out = json::is_truthy(*m);
  return {};
}
Status need_object(const json::Value& v) {
  if (!v.IsObject()) return error("expected a JSON object");
  return {};
}

} // namespace

std::string not_authorised_error(std::string_view reason) {
  return std::string(kNotAuthorised) + ": " + std::string(reason);
}

bool is_not_authorised(std::string_view error) {
  return error.substr(0, kNotAuthorised.size()) == kNotAuthorised;
}

std::string loose_string(const json::Value& obj, const char* field) {
  const json::Value* m = json::find(obj, field);
  if (!m) return "";
  return loose_scalar(*m).value_or("");
}

// --- ErrorReply ------------------------------------------------------------------------------

std::string ErrorReply::to_json() const {
  json::Writer w;
  w.begin_object().member("error", error);
  if (status) w.member("status", *status);
  w.end_object();
  return w.str();
}

Result<ErrorReply> ErrorReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  ErrorReply r;
  CX_TRY(read_str(v, "error", r.error));
  CX_TRY(read_opt(v, "status", r.status));
  return r;
}

namespace body {
std::string not_found() {
  return error_body("not found");
}
std::string empty_request() {
  return error_body("empty request");
}
std::string too_many_headers() {
  return error_body("too many headers");
}
std::string request_too_large() {
  return error_body("request too large");
}
std::string bad_request() {
  return error_body("bad request");
}
std::string revoked() {
  return error_body("certificate revoked");
}
std::string serial_mismatch() {
  return ErrorReply{"serial mismatch", std::string("forbidden")}.to_json();
}
std::string forbidden() {
  return error_body("forbidden");
}
std::string not_authorised() {
  return error_body(kNotAuthorised);
}
std::string not_authorised(std::string_view reason) {
  return error_body(not_authorised_error(reason));
}
} // namespace body

// --- /run ------------------------------------------------------------------------------------

std::string RunRequest::to_json() const {
  json::Writer w;
  w.begin_object()
      .member("script", script)
      .member("args", args)
      .member("reqid", reqid)
      .member("username", username)
      .member("token", token);
  if (async) w.member("async", true);
  w.end_object();
  return w.str();
}

RunRequestParse parse_run_request(std::string_view text) {
  RunRequestParse p;
  LooseBody b = parse_loose(text);
  if (!b.is_object) {
    p.error = RunRequestError::invalid_json;
    return p;
  }
  const json::Value& v = b.doc;
  p.request.script = loose_string(v, "script");
  p.request.reqid = loose_string(v, "reqid");
  p.request.username = loose_string(v, "username");
  p.request.token = loose_string(v, "token");
  if (const json::Value* a = json::find(v, "async")) p.request.async = json::is_truthy(*a);
  const json::Value* args = json::find(v, "args");
  if (args && !args->IsNull()) {
    if (!args->IsArray()) {
      p.error = RunRequestError::args_not_array;
      return p;
    }
    for (const auto& e : args->GetArray()) {
      auto s = loose_scalar(e);
      if (!s) {
        p.error = RunRequestError::args_not_strings;
        p.request.args.clear();
        return p;
      }
      // execve would cut the argument at the NUL: the script would get something other than
      // what the auth hook approved (docs/COMPATIBILITY.md).
      if (s->find('\0') != std::string::npos) {
        p.error = RunRequestError::args_with_nul;
        p.request.args.clear();
        return p;
      }
      p.request.args.push_back(std::move(*s));
    }
  }
  return p;
}

std::string_view run_request_error_text(RunRequestError e) {
  switch (e) {
  case RunRequestError::none:
    return "";
  case RunRequestError::invalid_json:
    return "invalid JSON";
  case RunRequestError::args_not_array:
    return "args must be an array";
  case RunRequestError::args_not_strings:
    return "args must be an array of strings";
  case RunRequestError::args_with_nul:
    return "args must not contain NUL bytes";
  }
  return "";
}

std::string RunResult::to_json() const {
  json::Writer w;
  w.begin_object();
  if (script) w.member("script", *script);
  w.member("exit", exit);
  if (out) w.member("stdout", *out);
  if (err) w.member("stderr", *err);
  if (reqid) w.member("reqid", *reqid);
  if (error) w.member("error", *error);
  if (truncated) w.member("truncated", true);
  if (timed_out) w.member("timed_out", true);
  if (host) w.member("host", *host);
  w.end_object();
  return w.str();
}

Result<RunResult> RunResult::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  RunResult r;
  CX_TRY(read_opt(v, "script", r.script));
  auto ex = json::get_int64_or(v, "exit", -1);
  if (!ex.ok()) return ex.status();
  r.exit = *ex;
  CX_TRY(read_opt(v, "stdout", r.out));
  CX_TRY(read_opt(v, "stderr", r.err));
  CX_TRY(read_opt(v, "reqid", r.reqid));
  CX_TRY(read_opt(v, "error", r.error));
  CX_TRY(read_flag(v, "truncated", r.truncated));
  CX_TRY(read_flag(v, "timed_out", r.timed_out));
  CX_TRY(read_opt(v, "host", r.host));
  return r;
}

std::string AsyncReply::to_json() const {
  json::Writer w;
  w.begin_object().member("script", script).member("status", status).member("reqid", reqid);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<AsyncReply> AsyncReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  AsyncReply r;
  CX_TRY(read_str(v, "script", r.script));
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_str(v, "reqid", r.reqid));
  CX_TRY(read_opt(v, "error", r.error));
  return r;
}

// --- /result ---------------------------------------------------------------------------------

std::string ResultRecord::to_json() const {
  json::Writer w;
  w.begin_object()
      .member("reqid", reqid)
      .member("status", status)
      .member("script", script)
      .member("owner", owner)
      .member("started", started);
  if (finished) w.member("finished", *finished);
  if (exit) w.member("exit", *exit);
  if (out) w.member("stdout", *out);
  if (err) w.member("stderr", *err);
  if (error) w.member("error", *error);
  if (truncated) w.member("truncated", true);
  if (timed_out) w.member("timed_out", true);
  w.end_object();
  return w.str();
}

Result<ResultRecord> ResultRecord::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  ResultRecord r;
  CX_TRY(read_str(v, "reqid", r.reqid));
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_str(v, "script", r.script));
  CX_TRY(read_str(v, "owner", r.owner));
  CX_TRY(read_str(v, "started", r.started));
  CX_TRY(read_opt(v, "finished", r.finished));
  if (json::find(v, "exit") && !json::find(v, "exit")->IsNull()) {
    auto ex = json::get_int64(v, "exit");
    if (!ex.ok()) return ex.status();
    r.exit = *ex;
  }
  CX_TRY(read_opt(v, "stdout", r.out));
  CX_TRY(read_opt(v, "stderr", r.err));
  CX_TRY(read_opt(v, "error", r.error));
  CX_TRY(read_flag(v, "truncated", r.truncated));
  CX_TRY(read_flag(v, "timed_out", r.timed_out));
  return r;
}

std::string result_unknown_json(std::string_view reqid) {
  json::Writer w;
  w.begin_object().member("status", "unknown").member("reqid", reqid).end_object();
  return w.str();
}

// --- /ping -----------------------------------------------------------------------------------

std::string PingRequest::to_json() const {
  json::Writer w;
  w.begin_object().member("reqid", reqid).end_object();
  return w.str();
}

PingRequest PingRequest::parse(std::string_view text) {
  LooseBody b = parse_loose(text);
  return PingRequest{b.is_object ? loose_string(b.doc, "reqid") : std::string()};
}

std::string PingReply::to_json() const {
  json::Writer w;
  w.begin_object()
      .member("status", status)
      .member("host", host)
      .member("version", version)
      .member("expiry", expiry)
      .member("staged", staged)
      .member("reqid", reqid)
      .end_object();
  return w.str();
}

Result<PingReply> PingReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  PingReply r;
  r.status.clear();
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_str(v, "host", r.host));
  CX_TRY(read_str(v, "version", r.version));
  CX_TRY(read_str(v, "expiry", r.expiry));
  CX_TRY(read_flag(v, "staged", r.staged));
  CX_TRY(read_str(v, "reqid", r.reqid));
  return r;
}

// --- /capabilities ---------------------------------------------------------------------------

std::string CapabilitiesReply::to_json() const {
  json::Writer w;
  w.begin_object()
      .member("status", status)
      .member("host", host)
      .member("version", version)
      .key("tags")
      .begin_object();
  for (const auto& [k, val] : tags)
    w.member(k, val);
  w.end_object().key("scripts").begin_array();
  for (const auto& s : scripts) {
    w.begin_object()
        .member("name", s.name)
        .member("path", s.path)
        .member("executable", s.executable)
        .member("profile", s.profile);
    if (s.schema_json) w.key("schema").raw(*s.schema_json);
    if (s.schema_version) w.member("schema_version", *s.schema_version);
    w.end_object();
  }
  w.end_array().end_object();
  return w.str();
}

Result<CapabilitiesReply> CapabilitiesReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  CapabilitiesReply r;
  r.status.clear();
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_str(v, "host", r.host));
  CX_TRY(read_str(v, "version", r.version));
  auto tags = json::get_optional_object(v, "tags");
  if (!tags.ok()) return tags.status();
  if (*tags) {
    for (const auto& m : (*tags)->GetObject()) {
      auto s = json::scalar_string(m.value);
      if (!s) return error("field 'tags' must be an object of strings");
      r.tags[std::string(m.name.GetString(), m.name.GetStringLength())] = *s;
    }
  }
  const json::Value* scripts = json::find(v, "scripts");
  if (scripts && !scripts->IsNull()) {
    if (!scripts->IsArray()) return error("field 'scripts' must be an array");
    for (const auto& e : scripts->GetArray()) {
      if (!e.IsObject()) return error("field 'scripts' must be an array of objects");
      ScriptInfo s;
      CX_TRY(read_str(e, "name", s.name));
      CX_TRY(read_str(e, "path", s.path));
      CX_TRY(read_flag(e, "executable", s.executable));
      CX_TRY(read_str(e, "profile", s.profile));
      if (const json::Value* schema = json::find(e, "schema"); schema && !schema->IsNull())
        s.schema_json = json::to_string(*schema);
      CX_TRY(read_opt(e, "schema_version", s.schema_version));
      r.scripts.push_back(std::move(s));
    }
  }
  return r;
}

// --- /rotate-serial --------------------------------------------------------------------------

std::string RotateRequest::to_json() const {
  json::Writer w;
  w.begin_object().member("serial", serial).member("action", action);
  if (!token.empty()) w.member("token", token);
  w.end_object();
  return w.str();
}

RotateRequest RotateRequest::parse(std::string_view text) {
  RotateRequest r;
  LooseBody b = parse_loose(text);
  if (!b.is_object) {
    r.action = "add";
    return r;
  }
  r.serial = loose_string(b.doc, "serial");
  r.action = loose_string(b.doc, "action");
  if (r.action.empty()) r.action = "add";
  r.token = loose_string(b.doc, "token");
  return r;
}

std::string RotateReply::to_json() const {
  json::Writer w;
  w.begin_object().member("status", status);
  if (action) w.member("action", *action);
  if (serial) w.member("serial", *serial);
  if (dispatcher) w.member("dispatcher", *dispatcher);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<RotateReply> RotateReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  RotateReply r;
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_opt(v, "action", r.action));
  CX_TRY(read_opt(v, "serial", r.serial));
  CX_TRY(read_opt(v, "dispatcher", r.dispatcher));
  CX_TRY(read_opt(v, "error", r.error));
  return r;
}

// --- /renew, /renew-complete -----------------------------------------------------------------

std::string RenewRequest::to_json() const {
  json::Writer w;
  w.begin_object().member("reqid", reqid).end_object();
  return w.str();
}

RenewRequest RenewRequest::parse(std::string_view text) {
  LooseBody b = parse_loose(text);
  return RenewRequest{b.is_object ? loose_string(b.doc, "reqid") : std::string()};
}

std::string RenewReply::to_json() const {
  json::Writer w;
  w.begin_object().member("status", status);
  if (csr) w.member("csr", *csr);
  if (reqid) w.member("reqid", *reqid);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<RenewReply> RenewReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  RenewReply r;
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_opt(v, "csr", r.csr));
  CX_TRY(read_opt(v, "reqid", r.reqid));
  CX_TRY(read_opt(v, "error", r.error));
  return r;
}

std::string RenewCompleteRequest::to_json() const {
  json::Writer w;
  w.begin_object().member("cert", cert).member("ca", ca).member("reqid", reqid).end_object();
  return w.str();
}

RenewCompleteRequest RenewCompleteRequest::parse(std::string_view text) {
  RenewCompleteRequest r;
  LooseBody b = parse_loose(text);
  if (!b.is_object) return r;
  r.cert = loose_string(b.doc, "cert");
  r.ca = loose_string(b.doc, "ca");
  r.reqid = loose_string(b.doc, "reqid");
  return r;
}

std::string RenewCompleteReply::to_json() const {
  json::Writer w;
  w.begin_object().member("status", status);
  if (reqid) w.member("reqid", *reqid);
  if (status == "ok" || staged) w.member("staged", staged);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<RenewCompleteReply> RenewCompleteReply::from_json(const json::Value& v) {
  CX_TRY(need_object(v));
  RenewCompleteReply r;
  CX_TRY(read_str(v, "status", r.status));
  CX_TRY(read_opt(v, "reqid", r.reqid));
  CX_TRY(read_flag(v, "staged", r.staged));
  CX_TRY(read_opt(v, "error", r.error));
  return r;
}

} // namespace cx::proto
