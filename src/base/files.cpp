// Files; see files.hpp.
#include "base/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/random.hpp"
#include "base/strings.hpp"

namespace cx {

std::string errno_text(int err) {
  return std::strerror(err);
}

FdContent read_fd(int fd, size_t max_bytes, size_t size_hint) {
  FdContent out;
  if (size_hint > 0 && size_hint <= max_bytes) {
    // Straight into a buffer of the expected size: no copies as it grows, each page touched
    // once (page faults are a large part of reading a big file in a VM).
    out.data.resize(size_hint);
    size_t got = 0;
    while (got < size_hint) {
      ssize_t n = ::read(fd, out.data.data() + got, size_hint - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        out.err = errno;
        break;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.data.resize(got);
    if (out.err != 0 || got < size_hint) {
      ::close(fd);
      return out;
    }
  }
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      out.err = errno;
      break;
    }
    if (n == 0) break;
    if (out.data.size() + static_cast<size_t>(n) > max_bytes) {
      out.too_large = true;
      break;
    }
    out.data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {

// Reads `fd` to its end and closes it.
Result<std::string> read_all(int fd, const std::string& path, size_t max_bytes,
                             size_t size_hint = 0) {
  FdContent content = read_fd(fd, max_bytes, size_hint);
  if (content.too_large)
    return error("cannot read '" + path + "': larger than " + std::to_string(max_bytes) + " bytes");
  if (content.err != 0) return error("cannot read '" + path + "': " + errno_text(content.err));
  return std::move(content.data);
}

// Opens `path` as a regular file and nothing else: the last component is not followed when it
// is a symbolic link (O_NOFOLLOW), and opening a FIFO or device does not block (O_NONBLOCK,
// cleared again once the file is known to be regular) nor make it our terminal (O_NOCTTY).
// Returns the descriptor, or -1 with `err` (an errno value) and `why` set; anything but a
// regular file is "not a regular file". `size`, when given, receives the file's size. A relative
// `path` is taken from the directory open as `dirfd` (AT_FDCWD: the working directory).
int open_regular(int dirfd, const std::string& path, int flags, mode_t mode, int& err,
                 std::string& why, off_t* size = nullptr) {
  int fd =
      ::openat(dirfd, path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
  if (fd < 0) {
    err = errno;
    // ELOOP is O_NOFOLLOW meeting a symbolic link; EISDIR and ENXIO (a socket) are the other
    // kinds of file that open() itself refuses.
    bool irregular = err == ELOOP || err == EISDIR || err == ENXIO;
    why = irregular ? "not a regular file" : errno_text(err);
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    err = EINVAL;
    why = "not a regular file";
    ::close(fd);
    return -1;
  }
  int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  if (size) *size = st.st_size;
  return fd;
}

} // namespace

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error("cannot read '" + path + "': " + errno_text(errno));
  return read_all(fd, path, max_bytes);
}

Result<std::string> read_regular_file(const std::string& path, size_t max_bytes) {
  int err = 0;
  std::string why;
  off_t size = 0;
  int fd = open_regular(AT_FDCWD, path, O_RDONLY, 0, err, why, &size);
  if (fd < 0) return error("cannot read '" + path + "': " + why);
  return read_all(fd, path, max_bytes, static_cast<size_t>(size));
}

Result<std::string> read_regular_file_at(int dirfd, const std::string& name, size_t max_bytes) {
  int err = 0;
  std::string why;
  off_t size = 0;
  int fd = open_regular(dirfd, name, O_RDONLY, 0, err, why, &size);
  if (fd < 0) return error("cannot read '" + name + "': " + why);
  return read_all(fd, name, max_bytes, static_cast<size_t>(size));
}

std::string dirname(std::string_view path) {
  size_t pos = path.find_last_of('/');
  if (pos == std::string_view::npos) return ".";
  if (pos == 0) return "/";
  return std::string(path.substr(0, pos));
}

std::string basename(std::string_view path) {
  size_t pos = path.find_last_of('/');
  return std::string(pos == std::string_view::npos ? path : path.substr(pos + 1));
}

namespace {

// The rest of an atomic write, once the temp file `tmp` is open as `fd`: the data, fsync, mode
// and owner, then `tmp` renamed over `target` (both in the directory `dirfd`, or paths with
// AT_FDCWD). The temp file is removed on any failure; messages name `shown`.
Status finish_atomic_write(int fd, int dirfd, const std::string& tmp, const std::string& target,
                           const std::string& shown, std::string_view data,
                           const WriteOptions& opts) {
  auto fail = [&](const char* what) {
    int e = errno;
    ::close(fd);
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return error("cannot write '" + shown + "': " + what + ": " + errno_text(e));
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    off += static_cast<size_t>(n);
  }
  if (opts.fsync && ::fsync(fd) != 0) return fail("fsync");
  if (::fchmod(fd, opts.mode) != 0) return fail("chmod");
  if ((opts.uid != static_cast<uid_t>(-1) || opts.gid != static_cast<gid_t>(-1)) &&
      ::fchown(fd, opts.uid, opts.gid) != 0)
    return fail("chown");
  if (::close(fd) != 0) {
    int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return error("cannot write '" + shown + "': close: " + errno_text(e));
  }
  if (::renameat(dirfd, tmp.c_str(), dirfd, target.c_str()) != 0) {
    int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return error("cannot write '" + shown + "': rename: " + errno_text(e));
  }
  return {};
}

} // namespace

Status write_file_atomic(const std::string& path, std::string_view data, const WriteOptions& opts) {
  std::string dir = dirname(path);
  std::string tmpl = dir + "/." + basename(path) + ".tmpXXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return error("cannot write '" + path + "': " + errno_text(errno));
  return finish_atomic_write(fd, AT_FDCWD, name.data(), path, path, data, opts);
}

Status write_file_atomic_at(int dirfd, const std::string& name, std::string_view data,
                            const WriteOptions& opts) {
  // mkostemp has no *at form: the same shape of name, `.<name>.tmp` and six random characters,
  // created exclusively and never through a link.
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    tmp = "." + name + ".tmp" + random_hex(3);
    fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return error("cannot write '" + name + "': " + errno_text(errno));
  return finish_atomic_write(fd, dirfd, tmp, name, name, data, opts);
}

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty() || is_directory(path)) return {};
  std::string parent = dirname(path);
  if (parent != path) CX_TRY(make_dirs(parent, mode));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    return error("cannot create directory '" + path + "': " + errno_text(errno));
  return {};
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_executable_file(const std::string& path) {
  return is_regular_file(path) && ::access(path.c_str(), X_OK) == 0;
}

std::optional<int64_t> file_mtime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<int64_t>(st.st_mtime);
}

Status remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return error("cannot remove '" + path + "': " + errno_text(errno));
  return {};
}

Result<std::vector<std::string>> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return error("cannot list '" + path + "': " + errno_text(errno));
  std::vector<std::string> out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::string> real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return std::nullopt;
  return std::string(buf);
}

std::string absolute_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) return path;
  return std::string(cwd) + "/" + path;
}

FileLock::~FileLock() {
  unlock();
}

FileLock::FileLock(FileLock&& o) noexcept : fd_(o.fd_), busy_(o.busy_) {
  o.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    unlock();
    fd_ = o.fd_;
    busy_ = o.busy_;
    o.fd_ = -1;
  }
  return *this;
}

Status FileLock::lock(const std::string& path, bool wait, mode_t create_mode) {
  return lock_file(path, wait, create_mode);
}

Status FileLock::lock_existing(const std::string& path, bool wait) {
  return lock_file(path, wait, std::nullopt);
}

Status FileLock::lock_file(const std::string& path, bool wait, std::optional<mode_t> create_mode) {
  unlock();
  busy_ = false;
  constexpr int kFlags = O_RDWR | O_APPEND;
  int fd = -1, err = 0;
  std::string why;
  bool created = false;
  if (!create_mode) {
    fd = open_regular(AT_FDCWD, path, kFlags, 0, err, why);
  } else {
    // O_EXCL tells whether we made the file, and never creates through a symbolic link. A
    // file removed between the two opens is simply created on the next round.
    for (int attempt = 0; attempt < 3 && fd < 0; ++attempt) {
      fd = open_regular(AT_FDCWD, path, kFlags | O_CREAT | O_EXCL, *create_mode, err, why);
      if (fd >= 0) {
        created = true;
      } else if (err == EEXIST) {
        fd = open_regular(AT_FDCWD, path, kFlags, 0, err, why);
        if (fd < 0 && err != ENOENT) break;
      } else {
        break;
      }
    }
  }
  if (fd < 0) return error("cannot open lock '" + path + "': " + why);
  // The umask would otherwise narrow the mode of a lock that other group members share.
  if (created) ::fchmod(fd, *create_mode);
  while (::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) {
      busy_ = true;
      return error("'" + path + "' is locked by another process");
    }
    return error("cannot lock '" + path + "': " + errno_text(e));
  }
  fd_ = fd;
  return {};
}

void FileLock::close_keep_lock() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void FileLock::unlock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
  }
}

namespace {
// Finds the colon-separated line whose first (name) or third (id) field matches.
std::optional<std::vector<std::string>> find_db_entry(const char* file, const std::string& key) {
  auto content = read_file(file, 16u << 20);
  if (!content) return std::nullopt;
  bool numeric = is_digits(key);
  for (auto& line : split(*content, '\n')) {
    auto f = split(line, ':');
    if (f.size() < 3) continue;
    if (f[0] == key || (numeric && f[2] == key)) return f;
  }
  return std::nullopt;
}
} // namespace

std::optional<UserInfo> lookup_user(const std::string& name_or_id) {
  auto f = find_db_entry("/etc/passwd", name_or_id);
  if (!f || f->size() < 4) {
    // A bare number is a valid uid even without a passwd entry; its gid defaults to the same.
    if (auto n = parse_uint(name_or_id); n && *n <= 0xFFFFFFFEu)
      return UserInfo{static_cast<uid_t>(*n), static_cast<gid_t>(*n)};
    return std::nullopt;
  }
  auto uid = parse_uint((*f)[2]), gid = parse_uint((*f)[3]);
  if (!uid || !gid) return std::nullopt;
  return UserInfo{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)};
}

std::optional<gid_t> lookup_group(const std::string& name_or_id) {
  auto f = find_db_entry("/etc/group", name_or_id);
  if (!f) {
    if (auto n = parse_uint(name_or_id); n && *n <= 0xFFFFFFFEu) return static_cast<gid_t>(*n);
    return std::nullopt;
  }
  auto gid = parse_uint((*f)[2]);
  if (!gid) return std::nullopt;
  return static_cast<gid_t>(*gid);
}

} // namespace cx
