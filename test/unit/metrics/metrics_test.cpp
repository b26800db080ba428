// The metrics registry and its text exposition (src/metrics/metrics.cpp).
#include <catch2/catch.hpp>

#include "metrics/metrics.hpp"

using namespace cx::metrics;

TEST_CASE("label values and help text are escaped as the format says", "[metrics]") {
  struct Row {
    const char* in;
    const char* label;
    const char* help;
  };
  const Row rows[] = {
      {"plain", "plain", "plain"},
      {"a\"b", "a\\\"b", "a\"b"},
      {"a\\b", "a\\\\b", "a\\\\b"},
      {"a\nb", "a\\nb", "a\\nb"},
      {"", "", ""},
  };
  for (const Row& r : rows) {
    CHECK(escape_label_value(r.in) == r.label);
    CHECK(escape_help(r.in) == r.help);
  }
}

TEST_CASE("sample values", "[metrics]") {
  const std::pair<double, const char*> rows[] = {
      {0, "0"},
      {3, "3"},
      {-2, "-2"},
      {0.005, "0.005"},
      {2.5, "2.5"},
      {1.0 / 0.0, "+Inf"},
      {-1.0 / 0.0, "-Inf"},
      {0.0 / 0.0, "NaN"},
  };
  for (const auto& [v, text] : rows)
    CHECK(format_value(v) == text);
}

TEST_CASE("counters and gauges: exact text", "[metrics]") {
  Registry r;
  auto& plain = r.counter("x_total", "Things.");
  auto& by = r.counter("req_total", "Requests\nby route.", {"route", "code"});
  auto& g = r.gauge("inflight", "In flight.");
  auto& lg = r.gauge("info", "Build.", {"version"});
  plain.at({}).inc(2);
  by.with({"GET /b", "200"}).inc();
  by.with({"GET /a", "404"}).inc(3);
  by.with({"GET \"q\"\\", "200"}).inc();
  g.at({}).set(1.5);
  lg.with({"1.0"}).set(1);
  CHECK(r.text() == "# HELP x_total Things.\n"
                    "# TYPE x_total counter\n"
                    "x_total 2\n"
                    "# HELP req_total Requests\\nby route.\n"
                    "# TYPE req_total counter\n"
                    "req_total{route=\"GET \\\"q\\\"\\\\\",code=\"200\"} 1\n"
                    "req_total{route=\"GET /a\",code=\"404\"} 3\n"
                    "req_total{route=\"GET /b\",code=\"200\"} 1\n"
                    "# HELP inflight In flight.\n"
                    "# TYPE inflight gauge\n"
                    "inflight 1.5\n"
                    "# HELP info Build.\n"
                    "# TYPE info gauge\n"
                    "info{version=\"1.0\"} 1\n");
}

TEST_CASE("a labelled family without series has only its HELP and TYPE", "[metrics]") {
  Registry r;
  r.counter("c_total", "C.", {"a"});
  CHECK(r.text() == "# HELP c_total C.\n# TYPE c_total counter\n");
}

TEST_CASE("histograms: cumulative buckets, +Inf, sum and count", "[metrics]") {
  Registry r;
  auto& h = r.histogram("rtt_seconds", "RTT.", {}, {0.1, 0.01, 1});
  auto& lh = r.histogram("d_seconds", "D.", {"op"}, {1});
  auto& s = h.at({});
  s.observe(0.005); // <= 0.01
  s.observe(0.01);  // on a bound: that bucket
  s.observe(0.5);   // <= 1
  s.observe(7);     // +Inf only
  lh.with({"run"}).observe(0.25);
  CHECK(r.text() == "# HELP rtt_seconds RTT.\n"
                    "# TYPE rtt_seconds histogram\n"
                    "rtt_seconds_bucket{le=\"0.01\"} 2\n"
                    "rtt_seconds_bucket{le=\"0.1\"} 2\n"
                    "rtt_seconds_bucket{le=\"1\"} 3\n"
                    "rtt_seconds_bucket{le=\"+Inf\"} 4\n"
                    "rtt_seconds_sum 7.515\n"
                    "rtt_seconds_count 4\n"
                    "# HELP d_seconds D.\n"
                    "# TYPE d_seconds histogram\n"
                    "d_seconds_bucket{op=\"run\",le=\"1\"} 1\n"
                    "d_seconds_bucket{op=\"run\",le=\"+Inf\"} 1\n"
                    "d_seconds_sum{op=\"run\"} 0.25\n"
                    "d_seconds_count{op=\"run\"} 1\n");
}

TEST_CASE("a series keeps its address as others are added", "[metrics]") {
  Registry r;
  auto& f = r.counter("c_total", "C.", {"a"});
  Counter& first = f.with({"m"});
  for (int i = 0; i < 100; ++i)
    f.with({std::to_string(i)}).inc();
  first.inc(5);
  CHECK(&f.with({"m"}) == &first);
  CHECK(f.with({"m"}).value() == 5);
}
