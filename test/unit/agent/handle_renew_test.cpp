// Tests for src/agent/handle_renew.cpp (tag [agent]): the CSR from the agent's key, and the
// checks before a renewed certificate is staged.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "handler_fixture.hpp"
#include "pki/ca.hpp"
#include "pki/cert.hpp"
#include "pki/csr.hpp"
#include "pki/key.hpp"
#include "pki/serial.hpp"
#include "proto/agent_wire.hpp"

using namespace cx;
using namespace cx::agent;

namespace {

// An agent key, its CA, and certificates for the renew-complete rows (EC keys are fast).
struct Pki {
  std::string key = *pki::generate_key();
  std::string other_key = *pki::generate_key();
  std::string ca_key = *pki::generate_key();
  std::string ca = *pki::create_ca_cert(ca_key);
  std::string other_ca_key = *pki::generate_key();
  std::string other_ca = *pki::create_ca_cert(other_ca_key);

  std::string cert(const std::string& for_key, const std::string& by_ca,
                   const std::string& by_ca_key) const {
    pki::IssueOptions o;
    o.serial = pki::new_serial();
    auto c = pki::sign_csr(*pki::create_csr(for_key, "agent.example"), by_ca, by_ca_key, o);
    REQUIRE(c.ok());
    return *c;
  }
};

std::string renew_complete_body(const std::string& cert) {
  proto::RenewCompleteRequest rq;
  rq.cert = cert;
  rq.reqid = "rn1";
  return rq.to_json();
}

} // namespace

TEST_CASE("renew answers a CSR made from the agent's key", "[agent]") {
  test::AgentFixture f;
  Pki p;
  f.write("agent.key", p.key);
  f.serve(handle_renew, R"({"reqid":"rn1"})");
  CHECK(f.client->answer().status == 200);
  auto doc = f.client->answer_json();
  CHECK(*json::get_string(doc, "status") == "ok");
  CHECK(*json::get_string(doc, "reqid") == "rn1");
  std::string csr = *json::get_string(doc, "csr");
  CHECK(csr.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0) == 0);
  // Signed for the agent's own key: a certificate from it matches that key.
  pki::IssueOptions o;
  o.serial = pki::new_serial();
  auto cert = pki::sign_csr(csr, p.ca, p.ca_key, o);
  REQUIRE(cert.ok());
  CHECK(*pki::key_matches_cert(p.key, *cert));
  // An EC key: the agent also says why an original (Perl) dispatcher will not renew it.
  CHECK(f.logs() ==
        std::vector<std::string>{
            "ACTION=renew PEER=127.0.0.1 REQID=rn1 STATUS=csr-generated",
            "ACTION=renew-key KEY=ec-256 PEER=127.0.0.1 REQID=rn1 WARNING=\"an original (Perl) "
            "dispatcher refuses CSRs under 2048 bits, so it cannot renew this EC key; pair again "
            "with --key-type rsa to renew there\""});
}

TEST_CASE("renew of an RSA key logs only the CSR", "[agent]") {
  test::AgentFixture f;
  pki::KeySpec rsa{pki::KeyType::rsa, 2048};
  std::string key = *pki::generate_key(rsa);
  f.write("agent.key", key);
  f.serve(handle_renew, R"({"reqid":"rn2"})");
  auto doc = f.client->answer_json();
  CHECK(*json::get_string(doc, "status") == "ok");
  CHECK(f.logs() ==
        std::vector<std::string>{"ACTION=renew PEER=127.0.0.1 REQID=rn2 STATUS=csr-generated"});
}

TEST_CASE("renew reports a key it cannot use", "[agent]") {
  struct Row {
    const char* key; // nullptr: no key file
    const char* reply;
    const char* log_error;
  };
  const Row rows[] = {
      {nullptr, R"({"status":"error","error":"agent key not available"})",
       "\"agent key not available\""},
      {"not a key", R"({"status":"error","error":"could not generate CSR"})", nullptr},
  };
  for (const auto& r : rows) {
    test::AgentFixture f;
    if (r.key) f.write("agent.key", r.key);
    f.serve(handle_renew, "");
    CHECK(f.client->answer().status == 200);
    CHECK(f.client->answer().body == r.reply);
    auto logs = f.logs();
    REQUIRE(logs.size() == 1);
    CHECK(logs[0].rfind("ACTION=renew ERROR=", 0) == 0);
    if (r.log_error)
      CHECK(logs[0] ==
            "ACTION=renew ERROR=" + std::string(r.log_error) + " PEER=127.0.0.1 REQID=(none)");
  }
}

TEST_CASE("renew-complete stages only a certificate from the CA for the agent's key", "[agent]") {
  Pki p;
  enum class Setup { all, no_ca, no_key };
  struct Row {
    std::string cert;
    Setup setup;
    std::string error; // "" when staged
  };
  const Row rows[] = {
      {"", Setup::all, "cert required"},
      {p.cert(p.key, p.ca, p.ca_key), Setup::no_ca, "CA cert not found at '<dir>/ca.crt'"},
      {p.cert(p.key, p.ca, p.ca_key), Setup::no_key, "agent key not found at '<dir>/agent.key'"},
      {p.cert(p.key, p.other_ca, p.other_ca_key), Setup::all,
       "renewed cert does not verify against the agent CA"},
      {p.cert(p.other_key, p.ca, p.ca_key), Setup::all,
       "renewed cert public key does not match the agent key"},
      {p.cert(p.key, p.ca, p.ca_key), Setup::all, ""},
  };
  int i = 0;
  for (const auto& r : rows) {
    INFO("row " << i++);
    test::AgentFixture f;
    if (r.setup != Setup::no_ca) f.write("ca.crt", p.ca);
    if (r.setup != Setup::no_key) f.write("agent.key", p.key);
    f.serve(handle_renew_complete, renew_complete_body(r.cert));
    CHECK(f.client->answer().status == 200);
    std::string staged = f.dir / "agent.crt.staged";
    if (r.error.empty()) {
      CHECK(f.client->answer().body == R"({"status":"ok","reqid":"rn1","staged":true})");
      CHECK(test::slurp(staged) == r.cert);
      struct stat sb {};
      REQUIRE(::stat(staged.c_str(), &sb) == 0);
      CHECK((sb.st_mode & 0777) == 0640);
      CHECK(f.logs() == std::vector<std::string>{
                            "ACTION=renew-complete PEER=127.0.0.1 REQID=rn1 STATUS=cert-staged"});
      continue;
    }
    std::string error = r.error;
    if (auto at = error.find("<dir>"); at != std::string::npos) error.replace(at, 5, f.dir.path());
    CHECK(f.client->answer().body == R"({"status":"error","error":")" + error + R"("})");
    CHECK_FALSE(path_exists(staged));
    CHECK(f.logs() == std::vector<std::string>{"ACTION=renew-complete ERROR=\"" + error +
                                               "\" PEER=127.0.0.1 REQID=rn1"});
  }
}
