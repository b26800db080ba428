// The registry index; see registry_index.hpp.
#include "state/registry_index.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

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
// The fewest bytes a stamp takes, and an entry: a file name ("a.json", with its length), the
// stamp, flags.
constexpr size_t kMinStampBytes = 1 + 1 + 8 + 1;
constexpr size_t kMinEntryBytes = 1 + 6 + kMinStampBytes + 1;
// An index larger than this is not read (about 300,000 agents' worth).
constexpr size_t kMaxIndexBytes = 64u << 20;

// From this many files on, a second thread shares the stat calls (on the project's 2-core
// reference VM, 10,000 of them cost 22 ms of CPU: the largest part of a listing).
constexpr size_t kParallelStatFiles = 2000;

constexpr uint8_t kSettledFlag = 1;
constexpr uint8_t kRecordFlag = 2;
constexpr uint8_t kNameOnlyFlag = 4; // IndexEntry::cached false: no stamp, no record

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

void put_stamp(Writer& w, const FileStamp& s) {
  w.varint(s.ino);
  w.varint(static_cast<uint64_t>(s.size));
  w.fixed(s.mtime_ns);
  // The change time is the modification time or a little after it.
  w.varint(zigzag(
      static_cast<int64_t>(static_cast<uint64_t>(s.ctime_ns) - static_cast<uint64_t>(s.mtime_ns))));
}

FileStamp get_stamp(Reader& in) {
  FileStamp s;
  s.ino = in.varint();
  s.size = static_cast<int64_t>(in.varint());
  s.mtime_ns = in.fixed<int64_t>();
  s.ctime_ns = static_cast<int64_t>(static_cast<uint64_t>(s.mtime_ns) +
                                    static_cast<uint64_t>(unzigzag(in.varint())));
  return s;
}

// An entry's head: its file name, stamp and flags (the record follows when it has one).
void put_head(Writer& w, std::string_view file, const FileStamp& s, uint8_t flags) {
  w.str(file);
  put_stamp(w, s);
  w.fixed(flags);
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
  bool name_only = false;
  std::string_view record; // the encoded record, "" when there is none
};

// An index file read and checked, as views into its bytes.
struct RawIndex {
  FileStamp dir;
  bool dir_settled = false;
  std::vector<RawEntry> entries;
};

// Reads one entry, checking it: a file name `<agent name>.json` after `prev_file` (the entries
// are in file-name order, without duplicates), known flags, and a record walk_record accepts.
bool read_entry(Reader& in, std::string_view prev_file, RawEntry& e) {
  e.file = in.str();
  e.stamp = get_stamp(in);
  uint8_t flags = in.fixed<uint8_t>();
  std::string_view name = RecordDir::record_name(e.file);
  if (!in.ok() || (flags > (kSettledFlag | kRecordFlag) && flags != kNameOnlyFlag) ||
      !is_agent_name(name) || !(prev_file < e.file))
    return false;
  e.settled = flags & kSettledFlag;
  e.name_only = flags == kNameOnlyFlag;
  if (e.name_only && e.stamp != FileStamp{}) return false;
  e.record = {};
  if (flags & kRecordFlag) {
    const char* rec = in.pos();
    if (!walk_record(in, name, nullptr)) return false;
    e.record = std::string_view(rec, static_cast<size_t>(in.pos() - rec));
  }
  return true;
}

// The index in `bytes`, every part checked (header, directory stamp, entries); nullopt when
// any check fails.
std::optional<RawIndex> parse_index(std::string_view bytes) {
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
  RawIndex out;
  Reader in(payload);
  out.dir = get_stamp(in);
  uint8_t dir_flags = in.fixed<uint8_t>();
  if (!in.ok() || dir_flags > kSettledFlag) return std::nullopt;
  out.dir_settled = dir_flags & kSettledFlag;
  out.entries.resize(count);
  std::string_view prev;
  for (RawEntry& e : out.entries) {
    if (!read_entry(in, prev, e)) return std::nullopt;
    prev = e.file;
  }
  if (!in.ok() || in.left() != 0) return std::nullopt;
  return out;
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

class UniqueFd {
public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_;
};

// Opens the index's directory (O_PATH), making it first when it is missing and `make` is set,
// with the registry directory's mode `dir_mode` (2770 when a group shares it: whoever may
// write records may write the index). A link there is not followed. -1 with errno when it
// cannot be had. `made`, when given, is set when this call made it.
int open_index_dir(int dfd, bool make, mode_t dir_mode, bool* made = nullptr) {
  const std::string name(kRegistryIndexDir);
  int fd = ::openat(dfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0 || errno != ENOENT || !make) return fd;
  if (::mkdirat(dfd, name.c_str(), 0700) == 0) {
    if (made) *made = true;
    int fd_rw = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd_rw >= 0) {
      (void)::fchmod(fd_rw, dir_mode & 07777);
      ::close(fd_rw);
    }
  } else if (errno != EEXIST) {
    return -1;
  }
  return ::openat(dfd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// Writes the index into its directory, `idir` as the scan opened it (or -1: made now).
Status write_index(int dfd, UniqueFd& idir, const std::string& index_dir, mode_t dir_mode,
                   std::string_view bytes) {
  if (idir.get() < 0) {
    idir.reset(open_index_dir(dfd, true, dir_mode));
    if (idir.get() < 0)
      return error("cannot open '" + index_dir + "': " +
                   (errno == ELOOP || errno == ENOTDIR ? "not a directory" : errno_text(errno)));
  }
  const std::string file(kRegistryIndexFile);
  struct stat st;
  if (::fstatat(idir.get(), file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
    // Nothing can be renamed over a directory: say so rather than write a file every time.
    return error("'" + index_dir + "/" + file + "' is a directory");
  WriteOptions wo;
  wo.mode = 0644;
  wo.fsync = false; // a cache: a torn file after a crash fails its checks and is rebuilt
  Status st2 = write_file_atomic_at(idir.get(), file, bytes, wo);
  if (!st2.ok()) return error(st2.message() + " (in '" + index_dir + "')");
  return {};
}

} // namespace

FileStamp file_stamp(const struct stat& st) {
  return FileStamp{static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
                   to_ns(st.st_mtim), to_ns(st.st_ctim)};
}

std::string encode_registry_index(const RegistryIndex& index) {
  std::string out(kHeaderBytes, '\0');
  Writer w(out);
  put_stamp(w, index.dir);
  w.fixed(static_cast<uint8_t>(index.dir_settled ? kSettledFlag : 0));
  for (const IndexEntry& e : index.entries) {
    if (!e.cached) {
      put_head(w, e.file, FileStamp{}, kNameOnlyFlag);
      continue;
    }
    put_head(w, e.file, e.stamp,
             static_cast<uint8_t>((e.settled ? kSettledFlag : 0) | (e.record ? kRecordFlag : 0)));
    if (e.record) encode_record(w, *e.record, RecordDir::record_name(e.file));
  }
  finish_index(out, index.entries.size());
  return out;
}

std::optional<RegistryIndex> decode_registry_index(std::string_view bytes) {
  auto raw = parse_index(bytes);
  if (!raw) return std::nullopt;
  RegistryIndex out{raw->dir, raw->dir_settled, {}};
  out.entries.reserve(raw->entries.size());
  for (const RawEntry& e : raw->entries) {
    IndexEntry entry{std::string(e.file), e.stamp, e.settled, !e.name_only, std::nullopt};
    if (!e.record.empty()) {
      Reader rec(e.record);
      walk_record(rec, RecordDir::record_name(e.file), &entry.record.emplace()); // checked
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

RegistryScan RegistryScan::of_records(std::vector<std::pair<std::string, AgentRecord>> records) {
  RegistryScan scan;
  for (auto& [name, rec] : records) {
    Item it;
    std::string file = name + ".json";
    it.file = {static_cast<uint32_t>(scan.files_.size()), static_cast<uint32_t>(file.size())};
    scan.files_ += file;
    scan.files_ += '\0';
    it.parsed = static_cast<int32_t>(scan.parsed_.size());
    it.kind = Kind::cached;
    scan.parsed_.push_back(std::move(rec));
    scan.items_.push_back(it);
  }
  return scan;
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
  using Kind = RegistryScan::Kind;
  IndexReport local;
  IndexReport& rep = report ? *report : local;
  rep = IndexReport{};
  // Taken before anything is looked at: a change after it leaves times that have not settled.
  const int64_t scan_start = options.now_ns >= 0 ? options.now_ns : coarse_now_ns();

  std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
  if (!d) return error("cannot list '" + dir + "': " + errno_text(errno));
  const int dfd = ::dirfd(d.get());
  RegistryScan scan;
  const std::string index_dir = dir + "/" + std::string(kRegistryIndexDir);
  struct stat dir_st;
  bool dir_known = ::fstat(dfd, &dir_st) == 0;
  // The index's directory is opened (made, when missing) before the directory's stamp is
  // taken: making it changes that stamp.
  bool made = false;
  UniqueFd idir(open_index_dir(dfd, options.write_index && dir_known, dir_st.st_mode, &made));
  // The directory's stamp, before its names are read: a name added or removed after this
  // changes it.
  if (made) dir_known = ::fstat(dfd, &dir_st) == 0;
  const FileStamp dir_stamp = dir_known ? file_stamp(dir_st) : FileStamp{};
  std::optional<RawIndex> old;
  if (idir.get() >= 0) {
    auto bytes = read_regular_file_at(idir.get(), std::string(kRegistryIndexFile), kMaxIndexBytes);
    if (bytes.ok()) {
      scan.index_ = std::move(bytes).value();
      old = parse_index(scan.index_);
    }
  }
  rep.index_used = old.has_value();
  // The names of the last scan stand when the directory has not changed since, and had
  // settled then.
  const bool names_known = old && dir_known && old->dir_settled && old->dir == dir_stamp;

  // The record files' names, sorted (the index's order).
  std::vector<Span> spans;
  auto add_name = [&](std::string_view file) {
    spans.push_back(
        Span{static_cast<uint32_t>(scan.files_.size()), static_cast<uint32_t>(file.size())});
    scan.files_.append(file);
    scan.files_.push_back('\0'); // so each name can be handed to the *at calls as it is
  };
  if (names_known) {
    spans.reserve(old->entries.size());
    size_t bytes = 0;
    for (const RawEntry& e : old->entries)
      bytes += e.file.size() + 1;
    scan.files_.reserve(bytes);
    for (const RawEntry& e : old->entries)
      add_name(e.file);
  } else {
    rep.listed = true;
    // A guess from the directory's size (a few dozen bytes an entry on the usual filesystems):
    // capacity that is never used is never touched, so guessing high costs nothing.
    if (dir_known && dir_st.st_size > 0) {
      const size_t guess = std::min<size_t>(static_cast<size_t>(dir_st.st_size), 64u << 20);
      spans.reserve(guess / 16);
      scan.files_.reserve(guess);
    }
    while (dirent* de = ::readdir(d.get())) {
      std::string_view file = de->d_name;
      std::string_view name = RecordDir::record_name(file);
      if (name.empty() || !is_agent_name(name)) continue;
      if (scan.files_.size() + file.size() >= std::numeric_limits<uint32_t>::max())
        return error("cannot list '" + dir + "': too many files");
      add_name(file);
    }
    sort_names(scan.files_, spans);
  }
  std::vector<Item>& items = scan.items_;
  items.resize(spans.size());
  for (size_t i = 0; i < spans.size(); ++i)
    items[i].file = spans[i];
  std::vector<Span>().swap(spans);
  const std::string_view names = scan.files_;
  auto file_of = [names](const Item& it) { return names.substr(it.file.offset, it.file.size); };

  // Every file's stat, shared with a second thread in a large directory. A symbolic link is not
  // followed, as Registry::get does not follow one.
  auto stat_range = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      struct stat st;
      Item& it = items[i];
      if (::fstatat(dfd, file_of(it).data(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        it.stat_error = errno;
        continue;
      }
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

  // Each file beside the index's entry for it (both in file-name order): a file the index has,
  // with the same stamp, settled, is a hit; any other regular file is read.
  bool changed = !old;
  const std::vector<RawEntry> none;
  const std::vector<RawEntry>& entries = old ? old->entries : none;
  auto prev_it = entries.begin();
  for (Item& it : items) {
    const std::string_view file = file_of(it);
    while (prev_it != entries.end() && prev_it->file < file) {
      changed = true; // an entry for a name that has gone
      ++prev_it;
    }
    const RawEntry* prev =
        (prev_it != entries.end() && prev_it->file == file) ? &*prev_it++ : nullptr;
    if (it.stat_error == ENOENT) { // gone since the directory was read
      it.kind = Kind::gone;
      changed = true;
      continue;
    }
    // Only regular files anyone may read are cached (the index is 0644); other names are kept
    // by name and looked at every time.
    it.kind = it.stat_error == 0 && it.regular && it.others_read ? Kind::cached : Kind::name_only;
    if (it.kind == Kind::cached && prev && !prev->name_only && prev->settled &&
        prev->stamp == it.stamp) {
      ++rep.hits;
      it.settled = true;
      if (!prev->record.empty()) // else a file known not to parse
        it.encoded = Span{static_cast<uint32_t>(prev->record.data() - scan.index_.data()),
                          static_cast<uint32_t>(prev->record.size())};
      continue;
    }
    if (it.stat_error == 0 && it.regular) {
      ++rep.reads;
      // Too large is "does not parse" for get() too, and is remembered without reading it.
      const bool too_large = it.stamp.size > static_cast<int64_t>(kMaxRecordBytes);
      auto text = too_large ? Result<std::string>(std::string())
                            : read_regular_file_at(dfd, std::string(file), kMaxRecordBytes);
      if (!text.ok()) {
        it.kind = Kind::name_only; // not ours to read, or gone: nothing to remember of it
      } else {
        it.settled = settled_at(it.stamp, scan_start);
        auto rec = too_large ? Result<AgentRecord>(error("too large"))
                             : parse_agent_record(*text, RecordDir::record_name(file));
        if (rec.ok()) {
          it.parsed = static_cast<int32_t>(scan.parsed_.size());
          scan.parsed_.push_back(std::move(rec).value());
        }
      }
    }
    if (it.kind == Kind::name_only) {
      changed |= !prev || !prev->name_only;
    } else if (!prev || prev->name_only || prev->stamp != it.stamp || prev->settled != it.settled ||
               prev->record.empty() != (it.parsed < 0)) {
      changed = true;
    } else if (it.parsed >= 0) { // read again only because it had not settled
      AgentRecord before;
      Reader in(prev->record);
      walk_record(in, RecordDir::record_name(file), &before);
      changed |= !(before == scan.parsed_.back());
    }
  }
  changed |= prev_it != entries.end();
  const bool dir_settled = names_known || (dir_known && settled_at(dir_stamp, scan_start));
  if (old && (old->dir != dir_stamp || old->dir_settled != dir_settled)) changed = true;

  if (changed && options.write_index) {
    std::string out(kHeaderBytes, '\0');
    out.reserve(std::max(scan.index_.size(), items.size() * 256) + 4096);
    Writer w(out);
    put_stamp(w, dir_stamp);
    w.fixed(static_cast<uint8_t>(dir_settled ? kSettledFlag : 0));
    uint64_t count = 0;
    for (const Item& it : items) {
      if (it.kind == Kind::gone) continue;
      ++count;
      if (it.kind == Kind::name_only) {
        put_head(w, file_of(it), FileStamp{}, kNameOnlyFlag);
        continue;
      }
      const bool has_record = it.encoded.size > 0 || it.parsed >= 0;
      put_head(
          w, file_of(it), it.stamp,
          static_cast<uint8_t>((it.settled ? kSettledFlag : 0) | (has_record ? kRecordFlag : 0)));
      if (it.encoded.size > 0)
        out.append(scan.index_, it.encoded.offset, it.encoded.size);
      else if (it.parsed >= 0)
        encode_record(w, scan.parsed_[static_cast<size_t>(it.parsed)],
                      RecordDir::record_name(file_of(it)));
    }
    finish_index(out, count);
    Status st = write_index(dfd, idir, index_dir, dir_st.st_mode, out);
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
