// A throw-away PKI for tests that speak TLS (tls, http, engine): a CA with a server and a client
// certificate, and a second CA with a "stranger" certificate that the first CA does not trust.
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "test/unit/testutil.hpp"
#include "tls/tls.hpp"

namespace cx::test {

struct TlsFixture {
  TempDir dir;
  TlsFixture() {
    REQUIRE(have_openssl());
    make_ca(dir);
    make_leaf(dir, "server", "agent.example", "7f3a9c");
    make_leaf(dir, "client", "ctrl-exec-dispatcher", "0100");
    make_ca(dir, "other");
    make_leaf(dir, "stranger", "ctrl-exec-dispatcher", "a1", "other");
  }
  // The leaf's cert and key ("" for none) with `ca` as the CA that peers must chain to.
  std::shared_ptr<tls::Credentials> creds(const std::string& leaf, const std::string& ca = "ca") {
    auto c = tls::Credentials::load(leaf.empty() ? "" : dir / (leaf + ".crt"),
                                    leaf.empty() ? "" : dir / (leaf + ".key"), dir / (ca + ".crt"));
    INFO(c.message());
    REQUIRE(c.ok());
    return *c;
  }
};

} // namespace cx::test
