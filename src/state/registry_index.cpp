// The registry index; see registry_index.hpp.
#include "state/registry_index.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>
#include <thread>

#include "base/files.hpp"
#include "base/strings.hpp"
#include "state/record_dir.hpp"

namespace cx::state {
namespace {

constexpr char kMagic[8] = {'C', 'X', 'R', 'E', 'G', 'I', 'D', 'X'};
constexpr uint32_t kVersion = 1;
// Written in host order: an index from a host of the other byte order reads as another value.
constexpr uint32_t kByteOrderMark = 0x01020304;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8 + 8;
// The fewest bytes an entry takes: a file name ("a.json", with its length), the stamp, flags.
constexpr size_t kMinEntryBytes = 1 + 6 + 1 + 1 + 8 + 1 + 1;
// An index larger than this is not read (about 300,000 agents' worth).
constexpr size_t kMaxIndexBytes = 64u << 20;

// From this many files on, a second thread shares the stat calls (on this project's 2-core
// reference machine they are a third of a 10,000-agent list).
constexpr size_t kParallelStatFiles = 2000;

constexpr uint8_t kSettledFlag = 1;
constexpr uint8_t kRecordFlag = 2;

// A 64-bit hash of the payload, eight bytes at a time: it catches a torn or damaged file, not
// a forged one (anyone who may write the directory may write records too).
uint64_t payload_hash(std::string_view s) {
  constexpr uint64_t k1 = 0x9E3779B185EBCA87ull, k2 = 0xC2B2AE3D27D4EB4Full;
  uint64_t h = 0x27D4EB2F165667C5ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    w *= k2;
    w = (w << 31) | (w >> 33);
    h ^= w * k1;
    h = ((h << 27) | (h >> 37)) * k1 + 0x85EBCA77C2B2AE63ull;
  }
  for (; i < s.size(); ++i) {
    h ^= static_cast<uint8_t>(s[i]) * 0x27D4EB2F165667C5ull;
    h = ((h << 11) | (h >> 53)) * k1;
  }
  h ^= h >> 33;
  h *= k2;
  h ^= h >> 29;
  h *= 0x165667B19E3779F9ull;
  h ^= h >> 32;
  return h;
}

// The payload is compact: lengths and counts are LEB128 varints, which keeps a 10,000-agent
// index near 1.7 MB, and reading it (not parsing it) is most of what a listing costs.
class Writer {
public:
  explicit Writer(std::string& out) : out_(out) {}
  template <typename T> void fixed(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void str(std::string_view s) {
    varint(s.size());
    out_.append(s);
  }

private:
  std::string& out_;
};

// Reads what Writer wrote; a read past the end (or an overlong varint) clears ok() and yields
// zero or "".
class Reader {
public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  const char* pos() const { return p_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  template <typename T> T fixed() {
    T v{};
    if (left() < sizeof v) return fail(v);
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return fail(uint64_t{0});
      uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    return fail(uint64_t{0});
  }
  std::string_view str() {
    uint64_t n = varint();
    if (!ok_ || left() < n) return fail(std::string_view());
    std::string_view s(p_, static_cast<size_t>(n));
    p_ += n;
    return s;
  }

private:
  template <typename T> T fail(T v) {
    ok_ = false;
    p_ = end_;
    return v;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

bool is_ascii(std::string_view s) {
  unsigned char high = 0;
  for (char c : s)
    high |= static_cast<unsigned char>(c);
  return high < 0x80;
}

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

void put_head(Writer& w, std::string_view file, const FileStamp& s, bool settled, bool has_record) {
  w.str(file);
  w.varint(s.ino);
  w.varint(static_cast<uint64_t>(s.size));
  w.fixed(s.mtime_ns);
  // The change time is the modification time or a little after it.
  w.varint(zigzag(
      static_cast<int64_t>(static_cast<uint64_t>(s.ctime_ns) - static_cast<uint64_t>(s.mtime_ns))));
  w.fixed(static_cast<uint8_t>((settled ? kSettledFlag : 0) | (has_record ? kRecordFlag : 0)));
}

// The record's members in a fixed order (walk_fields reads it; encoded_tags_match skips to the
// tags). The hostname comes first (RegistryScan::hostname),
// "" when it is the registry name, as it nearly always is (a record's hostname is never "").
void encode_record(Writer& w, const AgentRecord& r, std::string_view name) {
  w.str(r.hostname == name ? std::string_view() : std::string_view(r.hostname));
  w.str(r.ip);
  w.str(r.paired);
  w.str(r.expiry);
  w.str(r.reqid);
  w.varint(static_cast<uint64_t>(r.port) << 1 | (r.lookup_by == "ip" ? 1 : 0));
  w.varint(r.tags.size());
  for (const auto& [k, v] : r.tags) {
    w.str(k);
    w.str(v);
  }
  w.str(r.dispatcher_serial);
  w.str(r.serial_status);
  w.str(r.serial_broadcast);
  w.str(r.serial_confirmed);
  w.varint(r.extra.size());
  for (const auto& [k, v] : r.extra) {
    w.str(k);
    w.str(v);
  }
}

// Walks one encoded record, checking what parse_agent_record guarantees of a record (a
// normalised lookup_by and port, a serial_status, unique tag keys); with `into`, also stores it
// there, reusing its storage. `extras` receives the number of unknown members.
bool walk_fields(Reader& in, std::string_view name, AgentRecord* into, uint64_t& extras) {
  // Checked on the walk that stores nothing (the one made when the index is read); a JSON
  // record file cannot hold a string that is not UTF-8.
  bool utf8 = true;
  auto check = [&](std::string_view v) {
    if (!into && !is_ascii(v)) utf8 = utf8 && is_valid_utf8(v);
    return v;
  };
  auto field = [&](std::string AgentRecord::*member) {
    std::string_view v = check(in.str());
    if (into) (into->*member).assign(v.data(), v.size());
    return v;
  };
  if (field(&AgentRecord::hostname).empty() && into) into->hostname.assign(name);
  field(&AgentRecord::ip);
  field(&AgentRecord::paired);
  field(&AgentRecord::expiry);
  field(&AgentRecord::reqid);
  uint64_t port_by = in.varint();
  uint64_t port = port_by >> 1;
  uint64_t tags = in.varint();
  if (!in.ok() || port < 1 || port > 65535 || tags > in.left() / 2) // two lengths a pair
    return false;
  if (into) {
    into->lookup_by = (port_by & 1) ? "ip" : "hostname";
    into->port = static_cast<int>(port);
    into->tags.clear();
  }
  std::string_view prev;
  for (uint64_t i = 0; i < tags; ++i) {
    std::string_view k = check(in.str());
    std::string_view v = check(in.str());
    if (!in.ok() || (i > 0 && !(prev < k))) return false; // std::map's order, no duplicates
    prev = k;
    if (into) into->tags.emplace_hint(into->tags.end(), std::string(k), std::string(v));
  }
  field(&AgentRecord::dispatcher_serial);
  bool has_status = !field(&AgentRecord::serial_status).empty();
  field(&AgentRecord::serial_broadcast);
  field(&AgentRecord::serial_confirmed);
  extras = in.varint();
  if (!in.ok() || !utf8 || !has_status || extras > in.left() / 2) return false;
  if (into) into->extra.clear();
  for (uint64_t i = 0; i < extras; ++i) {
    std::string_view k = in.str();
    std::string_view v = in.str();
    if (into) into->extra.emplace_back(std::string(k), std::string(v));
  }
  return in.ok();
}

// tags_match on an encoded record, without decoding it: the tags follow five strings and the
// port (encode_record's order).
bool encoded_tags_match(std::string_view record, const TagFilter& filter) {
  Reader in(record);
  for (int i = 0; i < 5; ++i)
    in.str();
  in.varint();
  const uint64_t tags = in.varint();
  const Reader first = in;
  for (const auto& [k, v] : filter) {
    Reader t = first;
    bool found = false;
    for (uint64_t j = 0; j < tags && !found && t.ok(); ++j) {
      std::string_view tk = t.str(), tv = t.str();
      if (tk != k) continue;
      if (tv != v) return false;
      found = true;
    }
    if (!found) return false;
  }
  return true;
}

// walk_fields, and unknown members must read back as they are: they are written out raw.
bool walk_record(Reader& in, std::string_view name, AgentRecord* into) {
  Reader start = in;
  uint64_t extras = 0;
  if (!walk_fields(in, name, into, extras)) return false;
  if (extras == 0) return true;
  AgentRecord scratch;
  AgentRecord& r = into ? *into : scratch;
  if (!into && !walk_fields(start, name, &scratch, extras)) return false;
  auto again = parse_agent_record(agent_record_json(r), name);
  return again.ok() && *again == r;
}

// One entry of an index file, as views into its bytes.
struct RawEntry {
  std::string_view file;
  FileStamp stamp;
  bool settled = false;
  std::string_view record; // the encoded record, "" when the file did not parse
};

// The payload of an index whose header checks out (magic, version, byte order, size, hash),
// and the number of entries it claims.
std::optional<std::pair<std::string_view, uint64_t>> index_payload(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return std::nullopt;
  Reader head(bytes.substr(sizeof kMagic, kHeaderBytes - sizeof kMagic));
  uint32_t version = head.fixed<uint32_t>();
  uint32_t order = head.fixed<uint32_t>();
  uint64_t count = head.fixed<uint64_t>();
  uint64_t size = head.fixed<uint64_t>();
  uint64_t hash = head.fixed<uint64_t>();
  std::string_view payload = bytes.substr(kHeaderBytes);
  if (version != kVersion || order != kByteOrderMark || size != payload.size() ||
      count > payload.size() / kMinEntryBytes || hash != payload_hash(payload))
    return std::nullopt;
  return std::make_pair(payload, count);
}

// Reads the next entry, checking it: a file name `<agent name>.json` after `prev_file` (the
// entries are in file-name order, without duplicates), known flags, and a record walk_record
// accepts.
bool read_entry(Reader& in, std::string_view prev_file, RawEntry& e) {
  e.file = in.str();
  e.stamp.ino = in.varint();
  e.stamp.size = static_cast<int64_t>(in.varint());
  e.stamp.mtime_ns = in.fixed<int64_t>();
  e.stamp.ctime_ns = static_cast<int64_t>(static_cast<uint64_t>(e.stamp.mtime_ns) +
                                          static_cast<uint64_t>(unzigzag(in.varint())));
  uint8_t flags = in.fixed<uint8_t>();
  std::string_view name = RecordDir::record_name(e.file);
  if (!in.ok() || flags > (kSettledFlag | kRecordFlag) || !is_agent_name(name) ||
      !(prev_file < e.file))
    return false;
  e.settled = flags & kSettledFlag;
  e.record = {};
  if (flags & kRecordFlag) {
    const char* rec = in.pos();
    if (!walk_record(in, name, nullptr)) return false;
    e.record = std::string_view(rec, static_cast<size_t>(in.pos() - rec));
  }
  return true;
}

// Fills in the header of `out`, which holds kHeaderBytes of room and then `count` entries.
void finish_index(std::string& out, uint64_t count) {
  std::string head(kMagic, sizeof kMagic);
  Writer w(head);
  w.fixed(kVersion);
  w.fixed(kByteOrderMark);
  w.fixed(count);
  w.fixed(static_cast<uint64_t>(out.size() - kHeaderBytes));
  w.fixed(payload_hash(std::string_view(out).substr(kHeaderBytes)));
  out.replace(0, kHeaderBytes, head);
}

int64_t to_ns(const struct timespec& ts) {
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000 - 1;
  constexpr int64_t kMinSeconds = std::numeric_limits<int64_t>::min() / 1'000'000'000 + 1;
  int64_t sec = std::clamp<int64_t>(ts.tv_sec, kMinSeconds, kMaxSeconds);
  return sec * 1'000'000'000 + ts.tv_nsec;
}

// The clock the kernel stamps files with (multigrain timestamps are finer, never earlier), so
// a write after this reading leaves times at or after it, less the filesystem's granularity.
int64_t coarse_now_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return to_ns(ts);
}

bool settled_at(const FileStamp& s, int64_t scan_start_ns) {
  return std::max(s.mtime_ns, s.ctime_ns) <= scan_start_ns - kSettleNs;
}

// Sorts names (spans of `names`) as strings, but mostly by comparing integers: the names of a
// fleet share a prefix ("web-", "agent-0"), so each is keyed by the eight bytes after the
// prefix they all share, big-endian (zeros past its end: a name never holds a NUL), and only
// names with equal keys are compared in full.
void sort_names(std::string_view names, std::vector<RegistryScan::Span>& spans) {
  using Span = RegistryScan::Span;
  auto text = [names](Span s) { return names.substr(s.offset, s.size); };
  if (spans.size() < 2) return;
  size_t common = text(spans[0]).size();
  for (Span s : spans) {
    std::string_view a = text(spans[0]), b = text(s);
    size_t n = 0;
    while (n < common && n < b.size() && a[n] == b[n])
      ++n;
    common = n;
  }
  std::vector<std::pair<uint64_t, Span>> keyed;
  keyed.reserve(spans.size());
  for (Span s : spans) {
    std::string_view t = text(s);
    uint64_t key = 0;
    for (size_t i = common; i < common + 8; ++i)
      key = key << 8 | (i < t.size() ? static_cast<uint8_t>(t[i]) : 0);
    keyed.emplace_back(key, s);
  }
  std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return text(a.second).substr(std::min(common + 8, size_t{a.second.size})) <
           text(b.second).substr(std::min(common + 8, size_t{b.second.size}));
  });
  for (size_t i = 0; i < spans.size(); ++i)
    spans[i] = keyed[i].second;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};

} // namespace

FileStamp file_stamp(const struct stat& st) {
  return FileStamp{static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
                   to_ns(st.st_mtim), to_ns(st.st_ctim)};
}

std::string encode_registry_index(const std::vector<IndexEntry>& entries) {
  std::string out(kHeaderBytes, '\0');
  Writer w(out);
  for (const IndexEntry& e : entries) {
    put_head(w, e.file, e.stamp, e.settled, e.record.has_value());
    if (e.record) encode_record(w, *e.record, RecordDir::record_name(e.file));
  }
  finish_index(out, entries.size());
  return out;
}

std::optional<std::vector<IndexEntry>> decode_registry_index(std::string_view bytes) {
  auto payload = index_payload(bytes);
  if (!payload) return std::nullopt;
  std::vector<IndexEntry> out;
  Reader in(payload->first);
  RawEntry e;
  for (uint64_t i = 0; i < payload->second; ++i) {
    if (!read_entry(in, out.empty() ? std::string_view() : std::string_view(out.back().file), e))
      return std::nullopt;
    IndexEntry entry{std::string(e.file), e.stamp, e.settled, std::nullopt};
    if (!e.record.empty()) {
      Reader rec(e.record);
      walk_record(rec, RecordDir::record_name(e.file), &entry.record.emplace());
    }
    out.push_back(std::move(entry));
  }
  if (in.left() != 0) return std::nullopt;
  return out;
}

std::string_view RegistryScan::name(size_t i) const {
  const Item& it = items_[i];
  return RecordDir::record_name(std::string_view(files_).substr(it.file.offset, it.file.size));
}

std::string_view RegistryScan::hostname(size_t i) const {
  const Item& it = items_[i];
  if (it.encoded.size == 0) return parsed_[static_cast<size_t>(it.parsed)].hostname;
  Reader in(std::string_view(index_).substr(it.encoded.offset, it.encoded.size));
  std::string_view h = in.str();
  return h.empty() ? name(i) : h;
}

void RegistryScan::read(size_t i, AgentRecord& into) const {
  const Item& it = items_[i];
  if (it.encoded.size == 0) {
    into = parsed_[static_cast<size_t>(it.parsed)];
    return;
  }
  Reader in(std::string_view(index_).substr(it.encoded.offset, it.encoded.size));
  walk_record(in, name(i), &into); // checked when the index was read
}

bool RegistryScan::tags_match(size_t i, const TagFilter& filter) const {
  const Item& it = items_[i];
  if (it.encoded.size == 0)
    return state::tags_match(parsed_[static_cast<size_t>(it.parsed)].tags, filter);
  return encoded_tags_match(std::string_view(index_).substr(it.encoded.offset, it.encoded.size),
                            filter);
}

std::vector<size_t> RegistryScan::by_hostname() const {
  std::vector<size_t> order(items_.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  auto less = [this](size_t a, size_t b) { return hostname(a) < hostname(b); };
  if (!std::is_sorted(order.begin(), order.end(), less))
    std::stable_sort(order.begin(), order.end(), less);
  return order;
}

Result<RegistryScan> scan_registry(const std::string& dir, IndexReport* report,
                                   const ScanOptions& options) {
  using Span = RegistryScan::Span;
  using Item = RegistryScan::Item;
  IndexReport local;
  IndexReport& rep = report ? *report : local;
  rep = IndexReport{};
  // Taken before any file is looked at: a write after it leaves times that have not settled.
  const int64_t scan_start = options.now_ns >= 0 ? options.now_ns : coarse_now_ns();

  // The record files' names, sorted (the index's order).
  std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
  if (!d) return error("cannot list '" + dir + "': " + errno_text(errno));
  RegistryScan scan;
  std::vector<Item>& items = scan.items_;
  // A guess from the directory's size (a few dozen bytes an entry on the usual filesystems):
  // capacity that is never used is never touched, so guessing high costs nothing.
  struct stat dir_st;
  if (::fstat(::dirfd(d.get()), &dir_st) == 0 && dir_st.st_size > 0) {
    const size_t guess = std::min<size_t>(static_cast<size_t>(dir_st.st_size), 64u << 20);
    items.reserve(guess / 16);
    scan.files_.reserve(guess);
  }
  std::vector<Span> spans;
  spans.reserve(items.capacity());
  while (dirent* de = ::readdir(d.get())) {
    std::string_view file = de->d_name;
    std::string_view name = RecordDir::record_name(file);
    if (name.empty() || !is_agent_name(name)) continue;
    if (scan.files_.size() + file.size() >= std::numeric_limits<uint32_t>::max())
      return error("cannot list '" + dir + "': too many files");
    spans.push_back(
        Span{static_cast<uint32_t>(scan.files_.size()), static_cast<uint32_t>(file.size())});
    scan.files_.append(file);
    scan.files_.push_back('\0'); // so each name can be handed to fstatat as it is
  }
  const std::string_view names = scan.files_;
  sort_names(names, spans);
  items.resize(spans.size());
  for (size_t i = 0; i < spans.size(); ++i)
    items[i].file = spans[i];
  std::vector<Span>().swap(spans);
  auto file_of = [names](const Item& it) { return names.substr(it.file.offset, it.file.size); };

  // Every file's stat, shared with a second thread in a large directory. A symbolic link is not
  // followed, as Registry::get does not follow one.
  const int dfd = ::dirfd(d.get());
  auto stat_range = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      struct stat st;
      Item& it = items[i];
      if (::fstatat(dfd, file_of(it).data(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      it.stamp = file_stamp(st);
      it.regular = S_ISREG(st.st_mode);
      it.others_read = (st.st_mode & S_IROTH) != 0;
    }
  };
  {
    std::thread helper;
    size_t split = items.size();
    if (items.size() >= kParallelStatFiles && std::thread::hardware_concurrency() >= 2) {
      try {
        helper = std::thread(stat_range, items.size() / 2, items.size());
        split = items.size() / 2;
      } catch (const std::system_error&) { // no thread to be had: this one does it all
      }
    }
    stat_range(0, split);
    if (helper.joinable()) helper.join();
  }

  const std::string index_path = dir + "/" + std::string(kRegistryIndexFile);
  if (auto bytes = read_regular_file(index_path, kMaxIndexBytes); bytes.ok())
    scan.index_ = std::move(bytes).value();
  const auto payload = index_payload(scan.index_);

  // Walks the files beside the index's entries (both in file-name order): a file whose stamp
  // the index holds, settled, is a hit; any other is read. Returns false, having changed
  // nothing that counts, when an entry of the index does not check out: the caller then walks
  // again without the index.
  std::string path = dir + "/";
  const size_t dir_len = path.size();
  bool changed = false;
  auto walk = [&](bool with_index) {
    Reader old(with_index ? payload->first : std::string_view());
    uint64_t left = with_index ? payload->second : 0;
    RawEntry prev;
    bool have_prev = false;
    auto next_old = [&]() {
      std::string_view after = have_prev ? prev.file : std::string_view();
      have_prev = left > 0 && read_entry(old, after, prev);
      if (!have_prev && left > 0) return false;
      if (have_prev) --left;
      return true;
    };
    rep = IndexReport{};
    rep.index_used = with_index;
    scan.parsed_.clear();
    changed = false;
    if (!next_old()) return false;
    for (Item& it : items) {
      const std::string_view file = file_of(it);
      bool known = false;
      while (have_prev && prev.file <= file) {
        if (prev.file == file) {
          known = true;
          break;
        }
        changed = true; // an entry for a file that has gone
        if (!next_old()) return false;
      }
      it.encoded = Span{};
      it.parsed = -1;
      if (!it.regular) {
        changed |= known;
      } else if (known && it.others_read && prev.settled && prev.stamp == it.stamp) {
        ++rep.hits;
        it.settled = true;
        it.encoded = Span{static_cast<uint32_t>(prev.record.data() - scan.index_.data()),
                          static_cast<uint32_t>(prev.record.size())};
      } else {
        ++rep.reads;
        path.resize(dir_len);
        path.append(file);
        // Too large is "does not parse" for get() too, and is remembered without reading it.
        const bool too_large = it.stamp.size > static_cast<int64_t>(kMaxRecordBytes);
        auto text = too_large ? Result<std::string>(std::string())
                              : read_regular_file(path, kMaxRecordBytes);
        if (!text.ok()) {
          it.regular = false; // gone, or not ours to read: nothing to remember about it
          changed |= known;
        } else {
          it.settled = settled_at(it.stamp, scan_start);
          auto rec = too_large ? Result<AgentRecord>(error("too large"))
                               : parse_agent_record(*text, RecordDir::record_name(file));
          if (rec.ok()) {
            it.parsed = static_cast<int32_t>(scan.parsed_.size());
            scan.parsed_.push_back(std::move(rec).value());
          }
          if (!it.others_read) {
            changed |= known;
          } else if (!known || prev.stamp != it.stamp || prev.settled != it.settled ||
                     prev.record.empty() != (it.parsed < 0)) {
            changed = true;
          } else if (it.parsed >= 0) { // read again only because it had not settled
            AgentRecord before;
            Reader in(prev.record);
            walk_record(in, RecordDir::record_name(file), &before);
            changed |= !(before == scan.parsed_.back());
          }
        }
      }
      if (known && !next_old()) return false;
    }
    while (have_prev) { // entries after the last file
      changed = true;
      if (!next_old()) return false;
    }
    return old.left() == 0;
  };
  if (!payload || !walk(true)) walk(false);

  struct stat index_st;
  const bool index_exists = ::lstat(index_path.c_str(), &index_st) == 0;
  if (!rep.index_used) // nothing to replace and nothing to remember: no index
    changed = index_exists || std::any_of(items.begin(), items.end(), [](const Item& it) {
                return it.regular && it.others_read;
              });
  if (changed && index_exists && S_ISDIR(index_st.st_mode)) {
    // Nothing can be renamed over a directory: say so rather than write a file every time.
    rep.write_error = "'" + index_path + "' is a directory";
  } else if (changed && options.write_index) {
    std::string out(kHeaderBytes, '\0');
    out.reserve(std::max(scan.index_.size(), items.size() * 256) + 4096);
    Writer w(out);
    uint64_t count = 0;
    for (const Item& it : items) {
      if (!it.regular || !it.others_read) continue;
      ++count;
      const bool has_record = it.encoded.size > 0 || it.parsed >= 0;
      put_head(w, file_of(it), it.stamp, it.settled, has_record);
      if (it.encoded.size > 0)
        out.append(scan.index_, it.encoded.offset, it.encoded.size);
      else if (it.parsed >= 0)
        encode_record(w, scan.parsed_[static_cast<size_t>(it.parsed)],
                      RecordDir::record_name(file_of(it)));
    }
    finish_index(out, count);
    WriteOptions wo;
    wo.mode = 0644;
    wo.fsync = false; // a cache: a torn file after a crash fails its checks and is rebuilt
    Status st = write_file_atomic(index_path, out, wo);
    rep.written = st.ok();
    if (!st.ok()) rep.write_error = st.message();
  }

  // Only the files that hold a record remain, in file-name order.
  items.erase(std::remove_if(items.begin(), items.end(),
                             [](const Item& it) { return it.encoded.size == 0 && it.parsed < 0; }),
              items.end());
  rep.records = items.size();
  return scan;
}

} // namespace cx::state
