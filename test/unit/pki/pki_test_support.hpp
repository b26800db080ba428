// Shared helpers for the pki tests: a temp directory, running `openssl` (skipped with a WARN
// when it is absent), and keys and a CA made once per test run because key generation is slow.
#pragma once

#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "pki/ca.hpp"
#include "pki/key.hpp"

namespace cx::pki::test {

// A mkdtemp directory under /tmp, removed with its contents at scope exit.
class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/cx-pki-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& data) const {
    std::ofstream(file(name), std::ios::binary) << data;
    return file(name);
  }
  std::string read(const std::string& name) const {
    std::ifstream in(file(name), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output; // stdout and stderr together
};

inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline bool have_openssl() {
  static const bool found = run_command("command -v openssl").exit_code == 0;
  return found;
}

// Runs `openssl <args>` in `dir` with a private config file, so that neither /etc/ssl nor the
// user's settings take part. The config mirrors Debian's defaults the original relied on:
// `req -x509` adds SKID/AKID and a critical CA:TRUE.
class OpenSsl {
public:
  explicit OpenSsl(const TempDir& dir) : dir_(dir) {
    dir_.write("openssl.cnf", "[req]\n"
                              "distinguished_name = dn\n"
                              "x509_extensions = v3_ca\n"
                              "[dn]\n"
                              "[v3_ca]\n"
                              "subjectKeyIdentifier = hash\n"
                              "authorityKeyIdentifier = keyid:always,issuer\n"
                              "basicConstraints = critical,CA:true\n");
  }
  CommandResult operator()(const std::string& args) const {
    return run_command("cd '" + dir_.path() + "' && OPENSSL_CONF='" + dir_.file("openssl.cnf") +
                       "' openssl " + args);
  }

private:
  const TempDir& dir_;
};

// Skip the enclosing test case when there is no openssl to compare with.
#define CX_REQUIRE_OPENSSL()                                                                       \
  do {                                                                                             \
    if (!::cx::pki::test::have_openssl()) {                                                        \
      WARN("openssl is not on PATH; interoperability checks skipped");                             \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

inline std::string must(Result<std::string> r) {
  INFO(r.message());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// One EC CA for the whole run (EC keys are made in milliseconds).
struct TestCa {
  std::string key, cert;
};
inline const TestCa& test_ca() {
  static const TestCa ca = [] {
    TestCa c;
    c.key = must(generate_key());
    c.cert = must(create_ca_cert(c.key));
    return c;
  }();
  return ca;
}

// One mbedTLS-generated RSA-2048 key for the whole run.
inline const std::string& rsa2048_key() {
  static const std::string key = must(generate_key({.type = KeyType::rsa, .rsa_bits = 2048}));
  return key;
}

} // namespace cx::pki::test
