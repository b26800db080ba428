// Files: bounded reads, atomic writes (temp file, fsync, chmod/chown, rename), directories,
// advisory locks, and the user/group database read without NSS (so a static binary works in
// scratch images).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace cx {

std::string errno_text(int err);

// The most read_file reads unless told otherwise.
inline constexpr size_t kDefaultMaxReadBytes = 64u << 20;

// Reads a whole file; fails with "cannot read '<path>': <reason>" or if it exceeds max_bytes.
Result<std::string> read_file(const std::string& path, size_t max_bytes = kDefaultMaxReadBytes);
// As read_file, for a file in a directory that a less privileged user can write: the path must
// name a regular file itself. A symbolic link is not followed, and a FIFO or device is refused
// without blocking ("cannot read '<path>': not a regular file").
Result<std::string> read_regular_file(const std::string& path,
                                      size_t max_bytes = kDefaultMaxReadBytes);
// As read_regular_file, for `name` in the directory open as `dirfd` (errors name `name`).
Result<std::string> read_regular_file_at(int dirfd, const std::string& name,
                                         size_t max_bytes = kDefaultMaxReadBytes);

// What reading a descriptor to its end gave: the bytes, or why it stopped (`err`, an errno
// value from read(), or `too_large`, before more than max_bytes were kept).
struct FdContent {
  std::string data;
  int err = 0;
  bool too_large = false;
  bool ok() const { return err == 0 && !too_large; }
};
// Reads `fd` to its end, at most `max_bytes`, retrying on EINTR, and closes it. A `size_hint`
// (the size fstat gave) is read straight into a buffer of that size; more is still read if the
// file has grown.
FdContent read_fd(int fd, size_t max_bytes, size_t size_hint = 0);

struct WriteOptions {
  mode_t mode = 0644;
  uid_t uid = static_cast<uid_t>(-1); // -1 keeps the owner
  gid_t gid = static_cast<gid_t>(-1);
  bool fsync = true;
};
// Writes `data` to a temp file in the same directory, fsyncs it, sets mode and owner, then
// renames it over `path`. The target is never seen half-written; the temp file is removed on
// any failure.
Status write_file_atomic(const std::string& path, std::string_view data,
                         const WriteOptions& opts = {});
// The same for `name` in the directory open as `dirfd` (O_PATH will do): the temp file is made
// and renamed there, whatever that directory's path leads to by then. Errors name `name`.
Status write_file_atomic_at(int dirfd, const std::string& name, std::string_view data,
                            const WriteOptions& opts = {});

// mkdir -p; existing directories are left as they are.
Status make_dirs(const std::string& path, mode_t mode = 0755);

bool path_exists(const std::string& path);
bool is_regular_file(const std::string& path);
bool is_directory(const std::string& path);
// A regular file this process may execute.
bool is_executable_file(const std::string& path);
std::optional<int64_t> file_mtime(const std::string& path);
Status remove_file(const std::string& path); // absent counts as success
// Names in a directory, without "." and "..", sorted.
Result<std::vector<std::string>> list_dir(const std::string& path);
std::optional<std::string> real_path(const std::string& path);
// `path` against the working directory, links not resolved; as given when it is already
// absolute, empty, or the working directory cannot be read. For paths handed to a child that
// runs elsewhere (see daemon.hpp).
std::string absolute_path(const std::string& path);

std::string dirname(std::string_view path);
std::string basename(std::string_view path);

// An flock(2) on a file that is opened (and created) for the lifetime of the object. The lock
// file must be a regular file: a symbolic link planted in its place is neither followed nor
// created through, and a FIFO or device is refused without blocking.
class FileLock {
public:
  FileLock() = default;
  ~FileLock();
  FileLock(FileLock&& o) noexcept;
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  // Exclusive lock; with `wait` false, returns an error immediately when another holder exists
  // (then `busy()` is true). `create_mode` applies when the file is created.
  Status lock(const std::string& path, bool wait, mode_t create_mode = 0660);
  // The same, but a missing file is an error ("No such file or directory") and is not created:
  // for probes, which must leave no files behind.
  Status lock_existing(const std::string& path, bool wait);
  void unlock();
  bool held() const { return fd_ >= 0; }
  // The locked descriptor (-1 when not held), e.g. to hand the lock to a child process.
  int fd() const { return fd_; }
  // Closes our descriptor without unlocking: the lock stays held by whoever shares the open
  // file (a child that inherited it) until they close it. unlock() would release it for all.
  void close_keep_lock();
  bool busy() const { return busy_; }

private:
  Status lock_file(const std::string& path, bool wait, std::optional<mode_t> create_mode);

  int fd_ = -1;
  bool busy_ = false;
};

struct UserInfo {
  uid_t uid;
  gid_t gid;
};
// Reads /etc/passwd and /etc/group directly (no NSS), by name or number.
std::optional<UserInfo> lookup_user(const std::string& name_or_id);
std::optional<gid_t> lookup_group(const std::string& name_or_id);

} // namespace cx
