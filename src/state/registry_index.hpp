// The registry index: a cache, beside the records, of every record file's stat and parsed
// record, so that listing 10,000 agents stats 10,000 files and reads one instead of reading and
// parsing 10,000 (issue 14). The record files stay the truth: the index is derived, checked
// against each file's stat on every use, rewritten only when something changed, and ignored
// (then rebuilt) when it is missing, corrupt or from another version. The original never reads
// it (docs/COMPATIBILITY.md, "The registry index").
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "state/registry.hpp"

namespace cx::state {

// The index is `<registry>/.registry.index.d/index`. It has a directory of its own so that
// writing it (a temp file renamed) does not change the registry directory's stamp: an unchanged
// stamp then tells the next scan that no record file was added, removed or renamed, and spares
// it reading the directory. Neither name ends in ".json": the original reads every
// `<anything>.json` in the registry directory as a record, and no subdirectory.
inline constexpr std::string_view kRegistryIndexDir = ".registry.index.d";
inline constexpr std::string_view kRegistryIndexFile = "index";

// A stamp is trusted only once its times are this much older than the start of the scan that
// read what it stands for (a file, or the directory's list of names): a second covers
// filesystems that keep whole seconds. What changed more recently is read again on every scan
// until it settles.
inline constexpr int64_t kSettleNs = 1'000'000'000;

// What the index remembers of a stat. Any write changes the inode (a temp file renamed over, as
// both implementations write) or the change time (a write in place), and any name added to or
// removed from a directory changes its times, so an equal stamp means nothing changed, once
// the stamp has settled.
struct FileStamp {
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp file_stamp(const struct stat& st);

// One record file as the index holds it.
struct IndexEntry {
  std::string file; // "<name>.json"
  FileStamp stamp;
  // The stamp's times were at least kSettleNs older than the start of the scan that read the
  // file. A later write in place then gets a newer change time, so the stamp tells it apart.
  // An entry that has not settled is read again whatever its stamp: two writes within one tick
  // of the filesystem's clock leave the same times (git's "racy clean" entries).
  bool settled = false;
  // false for a name kept without its content: a file that is not a regular file anyone may
  // read (a link, a FIFO, a record without o+r: the index itself is 0644). It is looked at
  // afresh on every scan; its stamp is zero.
  bool cached = true;
  std::optional<AgentRecord> record; // nullopt: the file does not parse (list skips it)
  bool operator==(const IndexEntry&) const = default;
};

struct RegistryIndex {
  // The registry directory's stamp, taken before its names were read; when it had settled
  // then, `entries` holds every `<agent name>.json` in it, and a scan that finds the same stamp
  // takes the names from here.
  FileStamp dir;
  bool dir_settled = false;
  std::vector<IndexEntry> entries; // in file-name order
  bool operator==(const RegistryIndex&) const = default;
};

// The index file: a fixed header (magic, format version, byte-order mark, entry count, payload
// size and a 64-bit hash of the payload), then the directory's stamp and the entries, lengths
// and counts as varints. Fixed-size numbers are in host byte order: an index from another byte
// order or version fails the header's checks and is rebuilt.
std::string encode_registry_index(const RegistryIndex& index);
// nullopt for anything but an index this version would write: wrong magic, version, size or
// hash, entries out of order or duplicated, file names that are not `<agent name>.json`, and
// records that parse_agent_record could not have produced (unnormalised port, no serial_status,
// strings that are not UTF-8, unknown members that do not read back).
std::optional<RegistryIndex> decode_registry_index(std::string_view bytes);

// What one scan did: for tests, the benchmark, and callers that want to know why a list was
// slow. Nothing here is logged: a caller who may read the registry but not write it (an
// unprivileged operator, a read-only mount) is working as intended, only at the speed of the
// index as it stands.
struct IndexReport {
  size_t records = 0;      // record files that parsed
  size_t hits = 0;         // files served from the index
  size_t reads = 0;        // files read and parsed
  bool index_used = false; // an index was found and decoded
  bool listed = false;     // the directory was read (else its names came from the index)
  bool written = false;    // the index was (re)written
  std::string write_error; // why a rewrite that was due failed, "" otherwise
};

struct ScanOptions {
  // The scan's start on the clock file times come from (CLOCK_REALTIME_COARSE), in ns since
  // the epoch; -1 reads that clock. Tests set it to decide which stamps have settled.
  int64_t now_ns = -1;
  // false: never write the index (it is still read).
  bool write_index = true;
};

// The records of a registry directory as one scan found them, in file-name order. A record is
// decoded only when read(): listing 10,000 agents then needs one AgentRecord, not 10,000.
class RegistryScan {
public:
  // A scan of records read elsewhere (the shared store, state/kv.hpp): (registry name, record)
  // pairs in name order.
  static RegistryScan of_records(std::vector<std::pair<std::string, AgentRecord>> records);

  size_t size() const { return items_.size(); }
  // The registry name (the file name without .json) and the record's hostname member.
  std::string_view name(size_t i) const;
  std::string_view hostname(size_t i) const;
  // The record at `i`, written over `into`; its strings keep their storage, so a loop that
  // reads every record into one object allocates almost nothing after the first.
  void read(size_t i, AgentRecord& into) const;
  // state::tags_match of the record at `i`, without decoding the rest of it.
  bool tags_match(size_t i, const TagFilter& filter) const;
  // The positions in list()'s order: by hostname, equal hostnames in file-name order.
  std::vector<size_t> by_hostname() const;

  // Offsets, not views: the strings move with the scan, and a short one moves its bytes.
  struct Span {
    uint32_t offset = 0, size = 0;
  };

private:
  friend Result<RegistryScan> scan_registry(const std::string&, IndexReport*, const ScanOptions&);
  // What a scan found of a name, and what the next index says of it.
  enum class Kind : uint8_t {
    gone,      // removed before it could be looked at: not in the index
    name_only, // in the index by name only (IndexEntry::cached false)
    cached,    // in the index with its stamp, and its record if it parses
  };
  // One record file, as the scan found it; after the scan, only those holding a record remain.
  struct Item {
    Span file;           // in files_ (each name there ends in a NUL, outside the span)
    Span encoded;        // the record in index_, for a file the index was right about; else size 0
    int32_t parsed = -1; // else the record read from the file: its position in parsed_
    FileStamp stamp;
    int stat_error = 0; // errno of its stat, 0 when it worked
    bool regular = false, others_read = false, settled = false;
    Kind kind = Kind::gone;
  };
  std::string index_;               // the index file as read (hits point into it)
  std::string files_;               // the record file names, back to back
  std::vector<AgentRecord> parsed_; // records read from their files
  std::vector<Item> items_;
};

// Every `<name>.json` in `dir` with a valid agent name that is a regular file (not a symbolic
// link: lstat) and parses, as Registry::get would read it. Files that do not parse are left
// out, and so is a file that cannot be read. Errors: "cannot list '<dir>': <reason>" when the
// directory cannot be read (a missing one included). `report`, when given, receives what the
// scan did.
Result<RegistryScan> scan_registry(const std::string& dir, IndexReport* report = nullptr,
                                   const ScanOptions& options = {});

} // namespace cx::state
