// Tests for src/http/admission.cpp: the admission verdicts, the per-address book, the stage
// deadlines and the crowding tally, as rows.
#include <catch2/catch.hpp>

#include "http/admission.hpp"

using namespace cx::http;

namespace {
AddressCount counts(size_t queued, size_t handshake, size_t waiting, size_t handling,
                    size_t closing) {
  AddressCount c;
  c.by_phase = {queued, handshake, waiting, handling, closing};
  return c;
}
} // namespace

TEST_CASE("admission decisions", "[http]") {
  using V = Admission::Verdict;
  struct Row {
    const char* what;
    AdmissionLimits limits;
    size_t open;
    AddressCount count;
    bool tls;
    Admission decision;
  };
  const AdmissionLimits none{};
  const AdmissionLimits agent{1024, 128, 8};
  const Admission admit{V::admit, false, false};
  const Admission queue{V::admit, false, true};
  const Admission shed{V::admit, true, false};
  const Admission refuse{V::refuse_address, false, false};
  const Row rows[] = {
      {"no limits at all", none, 100000, counts(9, 5000, 5000, 5000, 5000), true, admit},
      {"an address with nothing open", agent, 0, counts(0, 0, 0, 0, 0), true, admit},
      {"below every cap", agent, 1023, counts(0, 7, 100, 0, 0), true, admit},
      {"the address's share is used up", agent, 10, counts(0, 0, 128, 0, 0), true, refuse},
      {"queued, handshakes, waiting and closing all count", agent, 10, counts(20, 8, 90, 0, 10),
       true, refuse},
      {"requests being handled do not count", agent, 10, counts(0, 0, 127, 900, 0), true, admit},
      {"its handshakes in progress: this one waits its turn", agent, 10, counts(0, 8, 0, 0, 0),
       true, queue},
      {"and so do the next ones", agent, 10, counts(50, 8, 0, 0, 0), true, queue},
      {"no handshake without TLS", agent, 10, counts(0, 8, 0, 0, 0), false, admit},
      {"the server is full: shed, not refuse", agent, 1024, counts(0, 0, 1, 0, 0), true, shed},
      {"full, and its handshakes busy: shed and wait", agent, 1024, counts(0, 8, 1, 0, 0), true,
       Admission{V::admit, true, true}},
      {"over its share, an address never sheds others", agent, 1024, counts(0, 0, 128, 0, 0), true,
       refuse},
      {"only a total cap", AdmissionLimits{2, 0, 0}, 2, counts(0, 0, 900, 0, 0), true, shed},
      {"only a handshake cap", AdmissionLimits{0, 0, 1}, 5000, counts(0, 1, 0, 0, 0), true, queue},
  };
  for (const auto& r : rows) {
    INFO(r.what);
    Admission got = admit_connection(r.limits, r.open, r.count, r.tls);
    CHECK(got.verdict == r.decision.verdict);
    CHECK(got.shed == r.decision.shed);
    CHECK(got.queue == r.decision.queue);
  }
  CHECK(refusal_reason(V::refuse_address) == "address");
  CHECK(refusal_reason(V::refuse_full) == "full");
  CHECK(refusal_reason(V::admit).empty());
}

TEST_CASE("the address book follows connections through their phases", "[http]") {
  AddressBook book;
  book.add("10.0.0.1", Phase::handshake);
  book.add("10.0.0.1", Phase::queued);
  book.add("10.0.0.2", Phase::waiting);
  CHECK(book.addresses() == 2);
  CHECK(book.count("10.0.0.1")[Phase::queued] == 1);
  book.move("10.0.0.1", Phase::queued, Phase::handshake);
  CHECK(book.count("10.0.0.1")[Phase::queued] == 0);
  CHECK(book.count("10.0.0.1")[Phase::handshake] == 2);
  book.move("10.0.0.1", Phase::handshake, Phase::waiting);
  book.move("10.0.0.1", Phase::waiting, Phase::handling);
  AddressCount c = book.count("10.0.0.1");
  CHECK(c[Phase::handshake] == 1);
  CHECK(c[Phase::waiting] == 0);
  CHECK(c[Phase::handling] == 1);
  CHECK(c.total() == 2);
  CHECK(c.pending() == 1);
  book.move("10.0.0.1", Phase::handling, Phase::closing);
  CHECK(book.count("10.0.0.1").pending() == 2);
  book.remove("10.0.0.1", Phase::closing);
  book.remove("10.0.0.1", Phase::handshake);
  // An address with nothing open is forgotten.
  CHECK(book.addresses() == 1);
  CHECK(book.count("10.0.0.1").total() == 0);
  CHECK(book.count("10.0.0.9").total() == 0);
  book.remove("10.0.0.2", Phase::waiting);
  CHECK(book.addresses() == 0);
}

TEST_CASE("stage deadlines are totals within the request's", "[http]") {
  struct Row {
    uint64_t stage, request, elapsed, budget;
  };
  const Row rows[] = {
      {0, 0, 0, 0},                // no limit at all: no timer
      {0, 0, 99999, 0},            //
      {10000, 0, 99999, 10000},    // only the stage's own
      {0, 30000, 0, 30000},        // only the request's: what is left of it
      {0, 30000, 25000, 5000},     //
      {10000, 30000, 0, 10000},    // the stage's, well within the request's
      {10000, 30000, 25000, 5000}, // the body late in a slow request: what is left
      {10000, 30000, 30000, 1},    // the request's is over: fire at once
      {10000, 30000, 45000, 1},    //
  };
  for (const auto& r : rows) {
    INFO(r.stage << " " << r.request << " " << r.elapsed);
    CHECK(stage_budget_ms(r.stage, r.request, r.elapsed) == r.budget);
  }
}

TEST_CASE("the crowding tally counts by kind and reason, with the latest peer", "[http]") {
  EventTally t;
  CHECK(t.empty());
  CHECK(t.take().empty());
  t.note("refused", "address", "10.0.0.1");
  t.note("shed", "full", "10.0.0.3");
  t.note("refused", "address", "10.0.0.2");
  t.note("refused", "full", "10.0.0.1");
  t.note("refused", "address", "10.0.0.1");
  using E = EventTally::Entry;
  CHECK(t.take() == std::vector<E>{{"refused", "address", "10.0.0.1", 3},
                                   {"refused", "full", "10.0.0.1", 1},
                                   {"shed", "full", "10.0.0.3", 1}});
  CHECK(t.empty());
  t.note("timeout", "head", "10.0.0.4");
  CHECK(t.take() == std::vector<E>{{"timeout", "head", "10.0.0.4", 1}});
}
