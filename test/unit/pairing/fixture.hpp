// What the tests of both sides of pairing share (test/unit/pairing, test/unit/agent): a
// dispatcher's CA and certificate on disk, and the options of a listener that serves them.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "base/files.hpp"
#include "pairing/listener.hpp"
#include "pki/ca.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "testutil.hpp"

namespace cx::pairing::test_fixture {

// A CA and a dispatcher cert in `dir`, made with our own pki (EC keys are fast).
struct DispatcherPki {
  std::string dir, ca_key, ca_cert, cert, key;
  explicit DispatcherPki(const std::string& d) : dir(d) {
    ca_key = *pki::generate_key();
    ca_cert = *pki::create_ca_cert(ca_key);
    key = *pki::generate_key();
    pki::IssueOptions o;
    o.serial = pki::new_serial();
    cert = *pki::sign_csr(*pki::create_csr(key, "ctrl-exec-dispatcher"), ca_cert, ca_key, o);
    REQUIRE(write_file_atomic(dir + "/ca.key", ca_key).ok());
    REQUIRE(write_file_atomic(dir + "/ca.crt", ca_cert).ok());
    REQUIRE(write_file_atomic(dir + "/dispatcher.key", key).ok());
    REQUIRE(write_file_atomic(dir + "/dispatcher.crt", cert).ok());
  }
};

// A quiet listener on 127.0.0.1 and a free port, serving the DispatcherPki in `tmp`; what it
// prints goes to `out` when given.
inline ListenerOptions listener_options(const test::TempDir& tmp, std::string* out = nullptr) {
  ListenerOptions o;
  o.bind_ip = "127.0.0.1";
  o.port = 0;
  o.timeout_s = 60;
  o.cert_path = tmp / "dispatcher.crt";
  o.key_path = tmp / "dispatcher.key";
  o.queue_dir = tmp / "pairing";
  o.read_stdin = false;
  o.poll_ms = 20;
  o.reverse_dns_timeout_ms = 200;
  o.rate.disabled = true;
  o.output = [out](const std::string& s) {
    if (out) *out += s;
  };
  return o;
}

} // namespace cx::pairing::test_fixture
