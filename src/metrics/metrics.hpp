// Prometheus metrics: a registry of counters, gauges and histograms with labels, and its text
// exposition (format 0.0.4). Values are plain numbers owned by one thread: the loop that serves
// the scrape also counts, so nothing here locks.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cx::metrics {

// The Content-Type of text() (the exposition format's version 0.0.4).
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
public:
  void inc(uint64_t n = 1) { value_ += n; }
  // For a count kept elsewhere (by another module), copied in when scraped.
  void set_total(uint64_t n) { value_ = n; }
  uint64_t value() const { return value_; }

private:
  uint64_t value_ = 0;
};

class Gauge {
public:
  void set(double v) { value_ = v; }
  void add(double v) { value_ += v; }
  double value() const { return value_; }

private:
  double value_ = 0;
};

class Histogram {
public:
  // `bounds`: the buckets' upper bounds, ascending, without +Inf.
  explicit Histogram(const std::vector<double>& bounds)
      : bounds_(&bounds), counts_(bounds.size() + 1, 0) {}
  void observe(double v);
  const std::vector<double>& bounds() const { return *bounds_; }
  // Per bucket (not cumulative), the last one being +Inf.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

private:
  const std::vector<double>* bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

enum class Type { counter, gauge, histogram };

// One metric name with its help, label names and a series per set of label values. The series
// are created on first use and stay at the same address, so a caller may keep a reference.
template <typename M> class Family {
public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The series for these label values, one per label name, in order.
  M& with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    return at(std::move(key));
  }
  M& at(std::vector<std::string> key) {
    auto it = series_.find(key);
    if (it == series_.end()) {
      if constexpr (std::is_same_v<M, Histogram>)
        it = series_.emplace(std::move(key), M(bounds_)).first;
      else
        it = series_.emplace(std::move(key), M()).first;
    }
    return it->second;
  }
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const std::map<std::vector<std::string>, M>& series() const { return series_; }

private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  std::map<std::vector<std::string>, M> series_;
};

class Registry {
public:
  // A family without labels gets its one series at once, so that it is exposed as 0.
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels,
                               std::vector<double> bounds);

  // Every family in the order registered, series sorted by their label values.
  std::string text() const;

private:
  struct Entry {
    Type type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  std::deque<Entry> families_;
};

// A label value as the format quotes it: backslash, double quote and line feed escaped.
std::string escape_label_value(std::string_view v);
// HELP text: backslash and line feed escaped.
std::string escape_help(std::string_view v);
// A sample value: integers without a point, +Inf, -Inf, NaN, else the shortest exact form.
std::string format_value(double v);

} // namespace cx::metrics
