// Shared helpers for unit tests: temp directories, shell commands for test fixtures (never for
// code under test), and a throw-away CA made with the openssl CLI.
#pragma once

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

namespace cx::test {

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/cx-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

struct CmdResult {
  int rc;
  std::string out;
};

// Runs a fixture command through /bin/sh, capturing stdout and stderr together.
inline CmdResult sh(const std::string& cmd) {
  CmdResult r{-1, {}};
  FILE* p = ::popen(("(" + cmd + ") 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline bool have_openssl() {
  return sh("command -v openssl").rc == 0;
}

inline std::string slurp(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// A CA ("ca.crt"/"ca.key") and leaf certs signed by it, made with the openssl CLI in `dir`.
// `kind` is "ec" (P-256) or "rsa" (2048, X.509 v1 without extensions, as the Perl original
// issues them).
inline void make_ca(const TempDir& dir, const std::string& name = "ca",
                    const std::string& kind = "ec") {
  std::string key =
      kind == "ec" ? "-newkey ec -pkeyopt ec_paramgen_curve:P-256" : "-newkey rsa:2048";
  auto r = sh("cd '" + dir.path() + "' && openssl req -x509 -nodes " + key + " -keyout " + name +
              ".key -out " + name + ".crt -days 30 -subj '/CN=ctrl-exec CA'");
  INFO(r.out);
  REQUIRE(r.rc == 0);
}

inline void make_leaf(const TempDir& dir, const std::string& name, const std::string& cn,
                      const std::string& serial_hex, const std::string& ca = "ca",
                      const std::string& kind = "ec") {
  std::string key =
      kind == "ec" ? "-newkey ec -pkeyopt ec_paramgen_curve:P-256" : "-newkey rsa:2048";
  auto r = sh("cd '" + dir.path() + "' && openssl req -new -nodes " + key + " -keyout " + name +
              ".key -out " + name + ".csr -subj '/CN=" + cn + "' && openssl x509 -req -in " + name +
              ".csr -CA " + ca + ".crt -CAkey " + ca + ".key -set_serial 0x" + serial_hex +
              " -days 30 -out " + name + ".crt");
  INFO(r.out);
  REQUIRE(r.rc == 0);
}

} // namespace cx::test
