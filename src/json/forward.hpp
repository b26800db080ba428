// Internal to json/: a RapidJSON SAX handler that passes every event on unchanged, for the
// handlers that change only a few (the parser's depth and UTF-8 checks, the DOM replayer).
#pragma once

#include <rapidjson/rapidjson.h>

#include <cstdint>

namespace cx::json::detail {

// Forwards each SAX event to `Target` (a Document being built, a Writer). A derived handler
// declares the events it treats otherwise; its declaration hides the one here.
template <typename Target> class ForwardingHandler {
public:
  explicit ForwardingHandler(Target& target) : target_(target) {}

  bool Null() { return target_.Null(); }
  bool Bool(bool b) { return target_.Bool(b); }
  bool Int(int i) { return target_.Int(i); }
  bool Uint(unsigned u) { return target_.Uint(u); }
  bool Int64(int64_t i) { return target_.Int64(i); }
  bool Uint64(uint64_t u) { return target_.Uint64(u); }
  bool Double(double d) { return target_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return target_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return target_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return target_.Key(s, n, copy); }
  bool StartObject() { return target_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return target_.EndObject(n); }
  bool StartArray() { return target_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return target_.EndArray(n); }

protected:
  Target& target_;
};

} // namespace cx::json::detail
