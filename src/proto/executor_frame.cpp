// Executor frames; see executor_frame.hpp.
#include "proto/executor_frame.hpp"

namespace cx::proto {

namespace {

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_field(std::string& out, std::string_view f) {
  put_u32(out, static_cast<uint32_t>(f.size()));
  out.append(f);
}

// A cursor over bytes that may end early.
struct Reader {
  std::string_view b;
  size_t pos = 0;
  bool short_read = false;

  std::optional<uint32_t> u32() {
    if (b.size() - pos < 4) {
      short_read = true;
      return std::nullopt;
    }
    auto byte = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(b[pos + i]));
    };
    uint32_t v = (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
    pos += 4;
    return v;
  }
  // A field of at most `max` bytes; nullopt with short_read when the bytes are not all there,
  // nullopt without it when the length is over `max`.
  std::optional<std::string> field(uint32_t max) {
    size_t start = pos;
    auto len = u32();
    if (!len) return std::nullopt;
    if (*len > max) {
      pos = start;
      return std::nullopt;
    }
    if (b.size() - pos < *len) {
      short_read = true;
      pos = start;
      return std::nullopt;
    }
    std::string f(b.substr(pos, *len));
    pos += *len;
    return f;
  }
};

bool strip_suffix(std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  s.resize(s.size() - suffix.size());
  return true;
}

constexpr std::string_view kTimeoutPrefix = "executor: script timed out after ";

} // namespace

std::string exec_timeout_line(int64_t seconds) {
  return std::string(kTimeoutPrefix) + std::to_string(seconds) + "s\n";
}

ExecLimits take_exec_limits(ExecResponse& resp) {
  ExecLimits l;
  // The executor writes the timeout line after the (possibly truncated) stderr.
  if (resp.exit == 126 && resp.err.size() >= 2 && resp.err.back() == '\n') {
    size_t start = resp.err.rfind('\n', resp.err.size() - 2);
    start = start == std::string::npos ? 0 : start + 1;
    std::string_view line(resp.err.data() + start, resp.err.size() - start);
    if (line.substr(0, kTimeoutPrefix.size()) == kTimeoutPrefix) {
      std::string_view num = line.substr(kTimeoutPrefix.size());
      num.remove_suffix(2); // "s\n"
      int64_t v = 0;
      bool digits = !num.empty() && num.size() <= 12;
      for (char c : num) {
        if (c < '0' || c > '9')
          digits = false;
        else
          v = v * 10 + (c - '0');
      }
      if (digits && line.size() == kTimeoutPrefix.size() + num.size() + 2) {
        l.timed_out = v;
        resp.err.resize(start);
      }
    }
  }
  bool cut_out = strip_suffix(resp.out, kExecTruncatedMarker);
  bool cut_err = strip_suffix(resp.err, kExecTruncatedMarker);
  l.truncated = cut_out || cut_err;
  return l;
}

Result<std::string> encode_request(const ExecRequest& req) {
  if (req.args.size() > kMaxFrameArgs) return error("too many arguments for the executor");
  std::string body;
  put_field(body, req.reqid);
  put_field(body, req.dispatcher_id);
  put_field(body, req.script);
  put_field(body, req.stdin_bytes);
  put_u32(body, static_cast<uint32_t>(req.args.size()));
  for (const auto& a : req.args)
    put_field(body, a);
  if (body.size() > kMaxFrameBytes) return error("request too large for the executor");
  std::string out;
  put_u32(out, static_cast<uint32_t>(body.size()));
  return out + body;
}

std::string encode_response(const ExecResponse& resp) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(resp.exit));
  put_field(out, resp.out);
  put_field(out, resp.err);
  return out;
}

RequestDecode decode_request(std::string_view bytes) {
  RequestDecode d;
  Reader outer{bytes};
  auto total = outer.u32();
  if (!total) return d;
  if (*total == 0 || *total > kMaxFrameBytes) {
    d.fail("frame too large");
    return d;
  }
  if (bytes.size() - 4 < *total) return d;
  Reader r{bytes.substr(4, *total)};
  auto fail = [&] {
    d.fail("malformed request");
    return d;
  };
  ExecRequest& q = d.request;
  auto reqid = r.field(*total);
  auto disp = reqid ? r.field(*total) : std::nullopt;
  auto script = disp ? r.field(*total) : std::nullopt;
  auto in = script ? r.field(*total) : std::nullopt;
  auto argc = in ? r.u32() : std::nullopt;
  if (!argc || *argc > kMaxFrameArgs) return fail();
  for (uint32_t i = 0; i < *argc; ++i) {
    auto a = r.field(*total);
    if (!a) return fail();
    q.args.push_back(std::move(*a));
  }
  if (r.pos != r.b.size()) return fail(); // trailing bytes inside the frame
  q.reqid = std::move(*reqid);
  q.dispatcher_id = std::move(*disp);
  q.script = std::move(*script);
  q.stdin_bytes = std::move(*in);
  d.complete(4 + *total);
  return d;
}

ResponseDecode decode_response(std::string_view bytes) {
  ResponseDecode d;
  Reader r{bytes};
  auto exit = r.u32();
  if (!exit) return d;
  auto out = r.field(kMaxResponseField);
  auto err = out ? r.field(kMaxResponseField) : std::nullopt;
  if (!err) {
    if (!r.short_read) d.fail("response too large");
    return d;
  }
  d.response.exit = static_cast<int32_t>(*exit);
  d.response.out = std::move(*out);
  d.response.err = std::move(*err);
  d.complete(r.pos);
  return d;
}

} // namespace cx::proto
