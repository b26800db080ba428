// Live output from agents; see live.hpp.
#include "engine/live.hpp"

#include "base/strings.hpp"
#include "json/json.hpp"
#include "json/writer.hpp"

namespace cx::engine {

bool is_ndjson(const std::string* content_type) {
  if (!content_type) return false;
  std::string_view v(*content_type);
  v = v.substr(0, v.find(';'));
  return to_lower(trim(v)) == proto::kNdjsonType;
}

void NdjsonReader::feed(std::string_view body, bool at_end, const ChunkFn& on_chunk) {
  while (scanned_ < body.size()) {
    size_t nl = body.find('\n', scanned_);
    if (nl == std::string_view::npos) {
      if (!at_end) return;
      nl = body.size();
    }
    line(body.substr(scanned_, nl - scanned_), on_chunk);
    scanned_ = nl + 1;
  }
}

void NdjsonReader::line(std::string_view text, const ChunkFn& on_chunk) {
  if (trim(text).empty()) return;
  auto doc = json::parse(text);
  if (doc.ok()) {
    if (auto c = proto::RunChunk::from_json(*doc)) {
      ++chunks_;
      if (on_chunk) on_chunk(*c);
      return;
    }
  }
  result_ = std::string(text); // read as the result, and judged there (invalid JSON, ...)
}

std::string output_event_json(const std::string& host, const proto::RunChunk& chunk, bool live,
                              uint64_t t_ms) {
  json::Writer w;
  w.begin_object()
      .member("event", "output")
      .member("host", host)
      .member("stream", chunk.stream)
      .member("data", chunk.data);
  if (live) w.member("ms", chunk.ms);
  w.member("t", static_cast<int64_t>(t_ms)).end_object();
  return w.str();
}

std::string result_event_json(const HostResult& result, uint64_t t_ms) {
  json::Writer w;
  w.begin_object()
      .member("event", "result")
      .member("host", result.name)
      .member("t", static_cast<int64_t>(t_ms))
      .key("result")
      .raw(json::to_string(result.doc))
      .end_object();
  return w.str();
}

std::string batch_event_json(const BatchReport& batch, uint64_t t_ms) {
  json::Writer w;
  w.begin_object().member("event", "batch").member("t", static_cast<int64_t>(t_ms)).key("batch");
  json::Writer b;
  write_batches(b, {batch});
  std::string arr = b.str(); // "[{...}]"
  w.raw(std::string_view(arr).substr(1, arr.size() - 2)).end_object();
  return w.str();
}

std::vector<proto::RunChunk> output_of(const HostResult& result) {
  std::vector<proto::RunChunk> out;
  for (const char* stream : {"stdout", "stderr"}) {
    const json::Value* v = json::find(result.doc, stream);
    if (!v || !v->IsString() || v->GetStringLength() == 0) continue;
    proto::RunChunk c;
    c.stream = stream;
    c.data.assign(v->GetString(), v->GetStringLength());
    out.push_back(std::move(c));
  }
  return out;
}

} // namespace cx::engine
