// The dispatcher's rotation state file; see rotation.hpp. Members this version does not know
// are kept and written back, so a Perl and a C++ dispatcher can share the file.
#include "state/rotation.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/kv.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::state {
namespace {

constexpr mode_t kRotationMode = 0640;
constexpr size_t kMaxRotationBytes = 1u << 20;

constexpr const char* kKnownFields[] = {
    "current_serial",  "previous_serial", "rotated_at",
    "overlap_expires", "overlap_days",    "previous_retired",
};

bool is_known_field(std::string_view k) {
  for (const char* f : kKnownFields)
    if (k == f) return true;
  return false;
}

// A string member: nullopt when absent or null (Perl's `defined`), an error for another type.
Result<std::optional<std::string>> optional_string(const json::Value& o, const char* field) {
  const json::Value* v = json::find(o, field);
  if (!v || v->IsNull()) return std::optional<std::string>();
  if (!v->IsString()) return error(std::string(field) + " must be a string");
  return std::optional<std::string>(std::string(v->GetString(), v->GetStringLength()));
}

// overlap_days: an integer, an integral double or a decimal string (as a Perl writer might
// leave it); absent or null gives the default.
Result<int64_t> overlap_days(const json::Value& o, int64_t fallback) {
  const json::Value* v = json::find(o, "overlap_days");
  if (!v || v->IsNull()) return fallback;
  if (v->IsString()) {
    if (auto n = parse_int(v->GetString())) return *n;
    return error("overlap_days must be an integer");
  }
  auto n = json::get_int64(o, "overlap_days");
  if (!n.ok()) return error("overlap_days must be an integer");
  return *n;
}

} // namespace

std::string rotation_json(const RotationState& s) {
  json::Writer w;
  w.begin_object().member("current_serial", s.current_serial);
  if (s.previous_serial) w.member("previous_serial", *s.previous_serial);
  w.member("rotated_at", s.rotated_at)
      .member("overlap_expires", s.overlap_expires)
      .member("overlap_days", s.overlap_days);
  if (s.previous_retired) w.member("previous_retired", *s.previous_retired);
  for (const auto& [k, v] : s.extra)
    w.key(k).raw(v);
  w.end_object();
  return w.str();
}

Result<RotationState> parse_rotation(std::string_view text) {
  auto doc = json::parse_object(text);
  if (!doc.ok()) return doc.status();
  const json::Value& o = *doc;
  RotationState s;
  // Every member may be absent: the original's readers test each one (a state without
  // current_serial broadcasts nothing), so only a wrong type is an error.
  CX_ASSIGN_OR_RETURN(auto current, optional_string(o, "current_serial"));
  s.current_serial = current.value_or("");
  CX_ASSIGN_OR_RETURN(s.previous_serial, optional_string(o, "previous_serial"));
  CX_ASSIGN_OR_RETURN(auto rotated_at, optional_string(o, "rotated_at"));
  s.rotated_at = rotated_at.value_or("");
  CX_ASSIGN_OR_RETURN(auto overlap_expires, optional_string(o, "overlap_expires"));
  s.overlap_expires = overlap_expires.value_or("");
  CX_ASSIGN_OR_RETURN(s.overlap_days, overlap_days(o, s.overlap_days));
  CX_ASSIGN_OR_RETURN(s.previous_retired, optional_string(o, "previous_retired"));
  for (auto it = o.MemberBegin(); it != o.MemberEnd(); ++it) {
    std::string key(it->name.GetString(), it->name.GetStringLength());
    if (!is_known_field(key)) s.extra.emplace_back(std::move(key), json::to_string(it->value));
  }
  return s;
}

// With the shared store (state/kv.hpp), the state is the key `rotation`.
constexpr std::string_view kRotationKey = "rotation";

Result<std::optional<RotationState>> load_rotation(const std::string& path) {
  if (KvStore* kv = shared_kv()) {
    auto got = kv->get(kRotationKey);
    if (!got.ok())
      return error(got.kind(), "rotation state in " + kv->describe() + ": " + got.message());
    if (!*got) return std::optional<RotationState>();
    CX_ASSIGN_OR_RETURN(RotationState s, parse_rotation((*got)->value));
    return std::optional<RotationState>(std::move(s));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return std::optional<RotationState>();
  CX_ASSIGN_OR_RETURN(std::string body, read_file(path, kMaxRotationBytes));
  CX_ASSIGN_OR_RETURN(RotationState s, parse_rotation(body));
  return std::optional<RotationState>(std::move(s));
}

Status save_rotation(const std::string& path, const RotationState& s) {
  if (KvStore* kv = shared_kv()) {
    Status st = kv->put(kRotationKey, rotation_json(s));
    if (st.ok()) return st;
    return error(st.kind(), "rotation state in " + kv->describe() + ": " + st.message());
  }
  CX_TRY(make_dirs(dirname(path), 0755));
  WriteOptions opts;
  opts.mode = kRotationMode;
  return write_file_atomic(path, rotation_json(s) + "\n", opts);
}

} // namespace cx::state
