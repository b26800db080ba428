// Certificate serials; see serials.hpp.
#include "state/serials.hpp"

#include "base/time.hpp"
#include "state/kv.hpp"

namespace cx::state {

Result<bool> claim_serial(const std::string& serial_hex) {
  KvStore* kv = shared_kv();
  if (!kv) return true;
  auto fail = [kv](const Status& st) {
    return error(st.kind(), "certificate serials in " + kv->describe() + ": " + st.message());
  };
  auto made = kv->create("ca/issued/" + serial_hex, iso8601_utc(unix_now()));
  if (!made.ok()) return fail(made.status());
  if (!*made) return false;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto cur = kv->get("ca/serial");
    if (!cur.ok()) return fail(cur.status());
    auto done = kv->replace("ca/serial", *cur ? (*cur)->revision : 0, serial_hex);
    if (!done.ok()) return fail(done.status());
    if (*done) return true;
  }
  return true; // the serial is ours; ca/serial only says which was issued last
}

} // namespace cx::state
