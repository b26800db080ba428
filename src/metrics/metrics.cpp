// The metrics registry and its text exposition; see metrics.hpp.
#include "metrics/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace cx::metrics {

void Histogram::observe(double v) {
  // The first bucket whose upper bound is >= v; past the last bound, +Inf.
  auto it = std::lower_bound(bounds_->begin(), bounds_->end(), v);
  ++counts_[static_cast<size_t>(it - bounds_->begin())];
  sum_ += v;
  ++count_;
}

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> labels) {
  Entry e{Type::counter, nullptr, nullptr, nullptr};
  e.counter =
      std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels));
  if (e.counter->labels().empty()) e.counter->at({});
  return *families_.emplace_back(std::move(e)).counter;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help,
                               std::vector<std::string> labels) {
  Entry e{Type::gauge, nullptr, nullptr, nullptr};
  e.gauge = std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels));
  if (e.gauge->labels().empty()) e.gauge->at({});
  return *families_.emplace_back(std::move(e)).gauge;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  Entry e{Type::histogram, nullptr, nullptr, nullptr};
  e.histogram = std::make_unique<Family<Histogram>>(std::move(name), std::move(help),
                                                    std::move(labels), std::move(bounds));
  if (e.histogram->labels().empty()) e.histogram->at({});
  return *families_.emplace_back(std::move(e)).histogram;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0)
    return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

namespace {

// `{a="x",b="y"}`, with `extra` (a histogram's le) last; "" when there is no label at all.
std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return {};
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ',';
    out.append(names[i]).append("=\"").append(escape_label_value(values[i])).append("\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out.append(extra_name).append("=\"").append(escape_label_value(extra_value)).append("\"");
  }
  out += '}';
  return out;
}

template <typename M> void head(std::string& out, const Family<M>& f, std::string_view type) {
  out.append("# HELP ").append(f.name()).append(" ").append(escape_help(f.help())).append("\n");
  out.append("# TYPE ").append(f.name()).append(" ").append(type).append("\n");
}

} // namespace

std::string Registry::text() const {
  std::string out;
  for (const Entry& e : families_) {
    switch (e.type) {
    case Type::counter:
      head(out, *e.counter, "counter");
      for (const auto& [values, c] : e.counter->series())
        out.append(e.counter->name())
            .append(label_set(e.counter->labels(), values))
            .append(" ")
            .append(std::to_string(c.value()))
            .append("\n");
      break;
    case Type::gauge:
      head(out, *e.gauge, "gauge");
      for (const auto& [values, g] : e.gauge->series())
        out.append(e.gauge->name())
            .append(label_set(e.gauge->labels(), values))
            .append(" ")
            .append(format_value(g.value()))
            .append("\n");
      break;
    case Type::histogram: {
      const auto& f = *e.histogram;
      head(out, f, "histogram");
      for (const auto& [values, h] : f.series()) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i <= h.bounds().size(); ++i) {
          cumulative += h.counts()[i];
          std::string le = i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf";
          out.append(f.name())
              .append("_bucket")
              .append(label_set(f.labels(), values, "le", le))
              .append(" ")
              .append(std::to_string(cumulative))
              .append("\n");
        }
        std::string labels = label_set(f.labels(), values);
        out.append(f.name()).append("_sum").append(labels).append(" ");
        out.append(format_value(h.sum())).append("\n");
        out.append(f.name()).append("_count").append(labels).append(" ");
        out.append(std::to_string(h.count())).append("\n");
      }
      break;
    }
    }
  }
  return out;
}

} // namespace cx::metrics
