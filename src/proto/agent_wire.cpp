// The JSON messages of port 7443; see agent_wire.hpp.
#include "proto/agent_wire.hpp"

#include <array>
#include <iterator>
#include <utility>

#include "base/strings.hpp"
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

// The requests that carry only a reqid (/ping, /renew): written, and read leniently (invalid
// JSON or a missing reqid gives "").
std::string reqid_body(std::string_view reqid) {
  json::Writer w;
  w.begin_object().member("reqid", reqid).end_object();
  return w.str();
}
std::string reqid_of(std::string_view body) {
  LooseBody b = parse_loose(body);
  return b.is_object ? loose_string(b.doc, "reqid") : std::string();
}

// Reads the members of a reply. Absent and null members leave their default; a member of the
// wrong type is the first error (Reading::strict) or left at its default (Reading::lenient).
class ReplyReader {
public:
  ReplyReader(const json::Value& v, Reading reading) : v_(v), reading_(reading) {
    if (!v.IsObject()) status_ = error("expected a JSON object");
  }

  ReplyReader& str(const char* field, std::string& out) {
    std::optional<std::string> s;
    opt(field, s);
    if (s) out = std::move(*s);
    return *this;
  }
  // Several string members, in this order.
  ReplyReader& strs(std::initializer_list<std::pair<const char*, std::string*>> fields) {
    for (const auto& [field, out] : fields)
      str(field, *out);
    return *this;
  }
  ReplyReader& opt(const char* field, std::optional<std::string>& out) {
    if (const json::Value* m = member(field)) {
      if (m->IsString())
        out.emplace(m->GetString(), m->GetStringLength());
      else
        wrong(field, "a string");
    }
    return *this;
  }
  // Perl peers may send 1/0 or "1" for booleans: flags are read by Perl truth.
  ReplyReader& flag(const char* field, bool& out) {
    if (const json::Value* m = member(field)) out = json::is_truthy(*m);
    return *this;
  }
  ReplyReader& integer(const char* field, int64_t& out) {
    std::optional<int64_t> i;
    opt_integer(field, i);
    if (i) out = *i;
    return *this;
  }
  // Strict: a JSON integer (or an integral double); lenient: as loose_integer.
  ReplyReader& opt_integer(const char* field, std::optional<int64_t>& out) {
    if (const json::Value* m = member(field)) {
      if (reading_ == Reading::lenient) {
        out = loose_integer(*m);
      } else if (auto i = json::get_int64(v_, field); i.ok()) {
        out = *i;
      } else {
        fail(i.status());
      }
    }
    return *this;
  }

  const json::Value& value() const { return v_; }
  Reading reading() const { return reading_; }
  void wrong(const char* field, const char* type) {
    fail(error("field '" + std::string(field) + "' must be " + type));
  }
  // Takes the failure of a reader of a nested object (kept only if it is the first).
  void absorb(const ReplyReader& nested) {
    if (!nested.status_.ok()) fail(nested.status_);
  }

  template <typename T> Result<T> done(T value) {
    if (!status_.ok()) return status_;
    return value;
  }

private:
  // The member, or nullptr when absent, null, or the reply is not an object.
  const json::Value* member(const char* field) const {
    const json::Value* m = json::find(v_, field);
    return m && !m->IsNull() ? m : nullptr;
  }
  void fail(Status st) {
    if (reading_ == Reading::strict && status_.ok()) status_ = std::move(st);
  }

  const json::Value& v_;
  Reading reading_;
  Status status_;
};

// The replies made of a `status` and optional strings (rotate, renew), written in the order
// given; `fields` pairs each member's name with a pointer to it.
template <typename Fields> std::string status_reply_json(std::string_view status, Fields fields) {
  json::Writer w;
  w.begin_object().member("status", status);
  for (const auto& [name, value] : fields)
    if (*value) w.member(name, **value);
  w.end_object();
  return w.str();
}

// `fields_of(reply)` gives the optional members of a reply, as for status_reply_json.
template <typename Reply, typename FieldsOf>
Result<Reply> read_status_reply(const json::Value& v, Reading reading, FieldsOf fields_of) {
  Reply r;
  ReplyReader in(v, reading);
  in.str("status", r.status);
  for (const auto& [name, value] : fields_of(r))
    in.opt(name, *value);
  return in.done(std::move(r));
}

} // namespace

std::string not_authorised_error(std::string_view reason) {
  return std::string(kNotAuthorised) + ": " + std::string(reason);
}

bool is_not_authorised(std::string_view error) {
  return error.substr(0, kNotAuthorised.size()) == kNotAuthorised;
}

std::optional<std::string> reported_host(const json::Value& reply) {
  const json::Value* h = json::find(reply, "host");
  if (!h || !h->IsString()) return std::nullopt;
  return std::string(h->GetString(), h->GetStringLength());
}

std::optional<int64_t> loose_integer(const json::Value& v) {
  if (v.IsInt64()) return v.GetInt64();
  if (v.IsUint64()) return static_cast<int64_t>(v.GetUint64());
  if (v.IsDouble()) {
    // Clamped first: converting an out-of-range double is undefined (an agent may send 1e300).
    double d = v.GetDouble();
    if (d != d) return std::nullopt; // NaN cannot come from JSON
    if (!(d > -9.2e18)) return INT64_MIN;
    if (d > 9.2e18) return INT64_MAX;
    return static_cast<int64_t>(d);
  }
  if (v.IsString()) return parse_int(trim(std::string_view(v.GetString(), v.GetStringLength())));
  return std::nullopt;
}

std::string loose_string(const json::Value& obj, const char* field) {
  const json::Value* m = json::find(obj, field);
  if (!m) return "";
  return loose_scalar(*m).value_or("");
}

// --- ErrorReply ------------------------------------------------------------------------------

std::string ErrorReply::to_json() const {
  json::Writer w;
  w.begin_object();
  if (error) w.member("error", *error);
  if (status) w.member("status", *status);
  w.end_object();
  return w.str();
}

Result<ErrorReply> ErrorReply::from_json(const json::Value& v, Reading reading) {
  ErrorReply r;
  ReplyReader in(v, reading);
  in.opt("error", r.error).opt("status", r.status);
  return in.done(std::move(r));
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
  return ErrorReply{std::string(kSerialMismatch), std::string("forbidden")}.to_json();
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
  if (stream) w.member("stream", true);
  w.end_object();
  return w.str();
}

std::string RunChunk::to_json() const {
  json::Writer w;
  w.begin_object().member("stream", stream).member("data", data).member("ms", ms).end_object();
  return w.str();
}

std::optional<RunChunk> RunChunk::from_json(const json::Value& v) {
  if (!v.IsObject()) return std::nullopt;
  const json::Value* s = json::find(v, "stream");
  const json::Value* d = json::find(v, "data");
  if (!s || !s->IsString() || !d || !d->IsString()) return std::nullopt;
  RunChunk c;
  c.stream.assign(s->GetString(), s->GetStringLength());
  if (c.stream != "stdout" && c.stream != "stderr") return std::nullopt;
  c.data.assign(d->GetString(), d->GetStringLength());
  if (const json::Value* m = json::find(v, "ms"); m && m->IsInt64()) c.ms = m->GetInt64();
  return c;
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
  if (const json::Value* a = json::find(v, "stream")) p.request.stream = json::is_truthy(*a);
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
  // Indexed by RunRequestError.
  static constexpr std::string_view kTexts[] = {"", "invalid JSON", "args must be an array",
                                                "args must be an array of strings",
                                                "args must not contain NUL bytes"};
  static_assert(std::size(kTexts) == static_cast<size_t>(RunRequestError::args_with_nul) + 1);
  return kTexts[static_cast<size_t>(e)];
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

namespace {
// The members that say how a run went, shared by a sync result and an async record.
template <typename Outcome> void read_outcome(ReplyReader& in, Outcome& r) {
  in.opt("stdout", r.out)
      .opt("stderr", r.err)
      .opt("error", r.error)
      .flag("truncated", r.truncated)
      .flag("timed_out", r.timed_out);
}
} // namespace

Result<RunResult> RunResult::from_json(const json::Value& v, Reading reading) {
  RunResult r;
  ReplyReader in(v, reading);
  in.opt("script", r.script).integer("exit", r.exit).opt("reqid", r.reqid);
  read_outcome(in, r);
  in.opt("host", r.host);
  return in.done(std::move(r));
}

std::string AsyncReply::to_json() const {
  json::Writer w;
  w.begin_object().member("script", script).member("status", status).member("reqid", reqid);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<AsyncReply> AsyncReply::from_json(const json::Value& v, Reading reading) {
  AsyncReply r;
  ReplyReader in(v, reading);
  in.str("script", r.script).str("status", r.status).str("reqid", r.reqid).opt("error", r.error);
  return in.done(std::move(r));
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

Result<ResultRecord> ResultRecord::from_json(const json::Value& v, Reading reading) {
  ResultRecord r;
  r.status = kStatusUnknown; // a record without a status says nothing about the run
  ReplyReader in(v, reading);
  in.strs({{"reqid", &r.reqid},
           {"status", &r.status},
           {"script", &r.script},
           {"owner", &r.owner},
           {"started", &r.started}})
      .opt("finished", r.finished)
      .opt_integer("exit", r.exit);
  read_outcome(in, r);
  return in.done(std::move(r));
}

std::string result_unknown_json(std::string_view reqid) {
  json::Writer w;
  w.begin_object().member("status", kStatusUnknown).member("reqid", reqid).end_object();
  return w.str();
}

// --- /ping -----------------------------------------------------------------------------------

std::string PingRequest::to_json() const {
  return reqid_body(reqid);
}

PingRequest PingRequest::parse(std::string_view text) {
  return PingRequest{reqid_of(text)};
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

Result<PingReply> PingReply::from_json(const json::Value& v, Reading reading) {
  PingReply r;
  r.status.clear();
  ReplyReader in(v, reading);
  in.strs(
        {{"status", &r.status}, {"host", &r.host}, {"version", &r.version}, {"expiry", &r.expiry}})
      .flag("staged", r.staged)
      .str("reqid", r.reqid);
  return in.done(std::move(r));
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

Result<CapabilitiesReply> CapabilitiesReply::from_json(const json::Value& v, Reading reading) {
  CapabilitiesReply r;
  r.status.clear();
  ReplyReader in(v, reading);
  in.str("status", r.status).str("host", r.host).str("version", r.version);
  if (const json::Value* tags = json::find(v, "tags"); tags && !tags->IsNull()) {
    if (!tags->IsObject()) {
      in.wrong("tags", "an object");
    } else {
      for (const auto& m : tags->GetObject()) {
        auto s = json::scalar_string(m.value);
        if (s)
          r.tags[std::string(m.name.GetString(), m.name.GetStringLength())] = *s;
        else
          in.wrong("tags", "an object of strings");
      }
    }
  }
  if (const json::Value* scripts = json::find(v, "scripts"); scripts && !scripts->IsNull()) {
    if (!scripts->IsArray()) {
      in.wrong("scripts", "an array");
    } else {
      // Leniently, an entry that is not an object still counts as a script (the original's log
      // counts the array), with nothing known about it.
      for (const auto& e : scripts->GetArray()) {
        ScriptInfo s;
        if (!e.IsObject()) {
          in.wrong("scripts", "an array of objects");
          r.scripts.push_back(std::move(s));
          continue;
        }
        ReplyReader entry(e, reading);
        entry.str("name", s.name)
            .str("path", s.path)
            .flag("executable", s.executable)
            .str("profile", s.profile)
            .opt("schema_version", s.schema_version);
        if (const json::Value* schema = json::find(e, "schema"); schema && !schema->IsNull())
          s.schema_json = json::to_string(*schema);
        in.absorb(entry);
        r.scripts.push_back(std::move(s));
      }
    }
  }
  return in.done(std::move(r));
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

namespace {
// The optional members of a rotate reply, in wire order (const or not, as the reply is).
template <typename R> auto rotate_fields(R& r) {
  return std::array{std::pair{"action", &r.action}, std::pair{"serial", &r.serial},
                    std::pair{"dispatcher", &r.dispatcher}, std::pair{"error", &r.error}};
}
template <typename R> auto renew_fields(R& r) {
  return std::array{std::pair{"csr", &r.csr}, std::pair{"reqid", &r.reqid},
                    std::pair{"error", &r.error}};
}
} // namespace

std::string RotateReply::to_json() const {
  return status_reply_json(status, rotate_fields(*this));
}

Result<RotateReply> RotateReply::from_json(const json::Value& v, Reading reading) {
  return read_status_reply<RotateReply>(v, reading, rotate_fields<RotateReply>);
}

// --- /renew, /renew-complete -----------------------------------------------------------------

std::string RenewRequest::to_json() const {
  return reqid_body(reqid);
}

RenewRequest RenewRequest::parse(std::string_view text) {
  return RenewRequest{reqid_of(text)};
}

std::string RenewReply::to_json() const {
  return status_reply_json(status, renew_fields(*this));
}

Result<RenewReply> RenewReply::from_json(const json::Value& v, Reading reading) {
  return read_status_reply<RenewReply>(v, reading, renew_fields<RenewReply>);
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
  if (status == kStatusOk || staged) w.member("staged", staged);
  if (error) w.member("error", *error);
  w.end_object();
  return w.str();
}

Result<RenewCompleteReply> RenewCompleteReply::from_json(const json::Value& v, Reading reading) {
  RenewCompleteReply r;
  ReplyReader in(v, reading);
  in.str("status", r.status).opt("reqid", r.reqid).flag("staged", r.staged).opt("error", r.error);
  return in.done(std::move(r));
}

} // namespace cx::proto
