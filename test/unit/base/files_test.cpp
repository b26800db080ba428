// Tests for src/base/files.cpp.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/files.hpp"

using namespace cx;

namespace {
std::string temp_dir() {
  char tmpl[] = "/tmp/cx-files-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  return tmpl;
}
} // namespace

TEST_CASE("atomic write replaces the target with the given mode", "[base]") {
  std::string dir = temp_dir();
  std::string path = dir + "/state.json";
  REQUIRE(write_file_atomic(path, "one", {.mode = 0600}).ok());
  REQUIRE(write_file_atomic(path, "two", {.mode = 0640}).ok());
  auto content = read_file(path);
  REQUIRE(content.ok());
  CHECK(*content == "two");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  // No temp files are left behind.
  auto names = list_dir(dir);
  REQUIRE(names.ok());
  CHECK(names->size() == 1);
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("atomic write into a missing directory fails and names the file", "[base]") {
  auto st = write_file_atomic("/nonexistent-dir-cx/x.json", "data");
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("/nonexistent-dir-cx/x.json") != std::string::npos);
}

TEST_CASE("read_file bounds and errors", "[base]") {
  std::string dir = temp_dir();
  REQUIRE(write_file_atomic(dir + "/big", std::string(100, 'x')).ok());
  CHECK_FALSE(read_file(dir + "/big", 10).ok());
  CHECK(read_file(dir + "/big", 100).ok());
  auto missing = read_file(dir + "/none");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message() == "cannot read '" + dir + "/none': No such file or directory");
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("make_dirs and path helpers", "[base]") {
  std::string dir = temp_dir();
  REQUIRE(make_dirs(dir + "/a/b/c", 0750).ok());
  CHECK(is_directory(dir + "/a/b/c"));
  CHECK(make_dirs(dir + "/a/b/c").ok());
  CHECK(dirname("/a/b/c") == "/a/b");
  CHECK(basename("/a/b/c") == "c");
  CHECK(dirname("c") == ".");
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("absolute_path joins a relative path to the working directory", "[base]") {
  char cwd[4096];
  REQUIRE(::getcwd(cwd, sizeof cwd) != nullptr);
  struct Row {
    std::string in, out;
  };
  const Row rows[] = {
      {"/etc/x.conf", "/etc/x.conf"},
      {"", ""},
      {"x.conf", std::string(cwd) + "/x.conf"},
      {"../a/./b", std::string(cwd) + "/../a/./b"}, // not normalised, links not resolved
  };
  for (const auto& r : rows) {
    INFO(r.in);
    CHECK(absolute_path(r.in) == r.out);
  }
}

TEST_CASE("a second non-blocking lock is refused while the first is held", "[base]") {
  std::string dir = temp_dir();
  std::string path = dir + "/h--s.lock";
  FileLock first;
  REQUIRE(first.lock(path, false).ok());
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0660);
  FileLock second;
  auto again = second.lock(path, false);
  CHECK_FALSE(again.ok());
  CHECK(second.busy());
  first.unlock();
  CHECK(second.lock(path, false).ok());
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("locks and regular-file reads refuse what is not a regular file", "[base]") {
  // A shared state directory: someone planted a symbolic link (to a file that does not exist
  // yet, or to one that does), a FIFO and a directory where a lock or a record is expected.
  std::string dir = temp_dir();
  std::string target = dir + "/target", existing = dir + "/existing";
  REQUIRE(write_file_atomic(existing, "secret").ok());
  REQUIRE(::symlink(target.c_str(), (dir + "/dangling").c_str()) == 0);
  REQUIRE(::symlink(existing.c_str(), (dir + "/link").c_str()) == 0);
  REQUIRE(::mkfifo((dir + "/fifo").c_str(), 0600) == 0);
  REQUIRE(::mkdir((dir + "/dir").c_str(), 0700) == 0);
  for (const char* name : {"dangling", "link", "fifo", "dir"}) {
    std::string path = dir + "/" + name;
    INFO(name);
    FileLock lock;
    Status st = lock.lock(path, false);
    CHECK(st.message() == "cannot open lock '" + path + "': not a regular file");
    CHECK_FALSE(lock.held());
    CHECK_FALSE(lock.busy());
    CHECK_FALSE(lock.lock_existing(path, true).ok());
    auto read = read_regular_file(path);
    REQUIRE_FALSE(read.ok());
    CHECK(read.message() == "cannot read '" + path + "': not a regular file");
  }
  CHECK_FALSE(path_exists(target)); // nothing was created through the link
  CHECK(*read_file(existing) == "secret");
  struct stat st;
  REQUIRE(::stat(existing.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644); // and nothing chmod'ed through it
  // Regular files work as before.
  CHECK(*read_regular_file(existing) == "secret");
  FileLock ok;
  CHECK(ok.lock(dir + "/new.lock", false).ok());
  CHECK(ok.held());
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("lock_existing neither creates a missing file nor differs otherwise", "[base]") {
  std::string dir = temp_dir();
  std::string path = dir + "/h--s.lock";
  FileLock probe;
  Status st = probe.lock_existing(path, false);
  CHECK(st.message() == "cannot open lock '" + path + "': No such file or directory");
  CHECK_FALSE(probe.busy());
  CHECK_FALSE(path_exists(path));
  FileLock holder;
  REQUIRE(holder.lock(path, false).ok());
  CHECK_FALSE(probe.lock_existing(path, false).ok());
  CHECK(probe.busy());
  holder.unlock();
  CHECK(probe.lock_existing(path, false).ok());
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("user and group lookup without NSS", "[base]") {
  auto root = lookup_user("root");
  REQUIRE(root);
  CHECK(root->uid == 0);
  CHECK(lookup_group("root") == gid_t{0});
  CHECK(lookup_user("1234")->uid == 1234u);
  CHECK_FALSE(lookup_user("no-such-user-cx"));
}

TEST_CASE("bounded reads: at, under and over the limit, and a size hint that is wrong", "[base]") {
  std::string dir = temp_dir();
  for (size_t size :
       {size_t(0), size_t(1), size_t(16383), size_t(16384), size_t(16385), size_t(100000)}) {
    INFO("size " << size);
    std::string data(size, 'x');
    for (size_t i = 0; i < size; ++i)
      data[i] = static_cast<char>('a' + i % 26);
    const std::string path = dir + "/f";
    REQUIRE(write_file_atomic(path, data).ok());
    CHECK(*read_regular_file(path, size) == data); // exactly the limit
    CHECK(*read_regular_file(path) == data);
    if (size > 0) {
      auto over = read_regular_file(path, size - 1);
      REQUIRE_FALSE(over.ok());
      CHECK(over.message() ==
            "cannot read '" + path + "': larger than " + std::to_string(size - 1) + " bytes");
    }
    // The file grew or shrank after its size was taken: all of it is read all the same.
    for (size_t hint : {size / 2 + 1, size + 100}) {
      INFO("hint " << hint);
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      REQUIRE(fd >= 0);
      FdContent got = read_fd(fd, size + 1000, hint);
      CHECK(got.ok());
      CHECK(got.data == data);
    }
  }
  std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("atomic writes and regular-file reads relative to a directory descriptor", "[base]") {
  std::string dir = temp_dir();
  REQUIRE(::mkdir((dir + "/d").c_str(), 0755) == 0);
  int dfd = ::open((dir + "/d").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dfd >= 0);
  WriteOptions opts;
  opts.mode = 0640;
  REQUIRE(write_file_atomic_at(dfd, "f", "one", opts).ok());
  REQUIRE(write_file_atomic_at(dfd, "f", "two", opts).ok());
  CHECK(*read_regular_file_at(dfd, "f") == "two");
  CHECK(*read_file(dir + "/d/f") == "two");
  struct stat st;
  REQUIRE(::stat((dir + "/d/f").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  // The descriptor, not the path: the directory renamed away is still the one written.
  REQUIRE(::rename((dir + "/d").c_str(), (dir + "/moved").c_str()) == 0);
  REQUIRE(::symlink("/nonexistent", (dir + "/d").c_str()) == 0);
  REQUIRE(write_file_atomic_at(dfd, "g", "three").ok());
  CHECK(*read_file(dir + "/moved/g") == "three");
  // A failed rename (over a directory) leaves no temp file; errors name the file.
  REQUIRE(::mkdir((dir + "/moved/sub").c_str(), 0755) == 0);
  Status failed = write_file_atomic_at(dfd, "sub", "x");
  CHECK(failed.message().rfind("cannot write 'sub': rename: ", 0) == 0);
  CHECK(*list_dir(dir + "/moved") == std::vector<std::string>{"f", "g", "sub"});
  auto link = read_regular_file_at(dfd, "sub");
  CHECK(link.message() == "cannot read 'sub': not a regular file");
  ::close(dfd);
  // The path form, in a directory that may be written but not listed.
  REQUIRE(::mkdir((dir + "/wx").c_str(), 0300) == 0);
  CHECK(write_file_atomic(dir + "/wx/h", "four").ok());
  ::chmod((dir + "/wx").c_str(), 0700);
  CHECK(*read_file(dir + "/wx/h") == "four");
  CHECK(write_file_atomic(dir + "/missing/h", "x").message() ==
        "cannot write '" + dir + "/missing/h': No such file or directory");
  std::system(("rm -rf " + dir).c_str());
}
