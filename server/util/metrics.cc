#include "server/util/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rio::util {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "rio-server: metrics: %s\n", message.c_str());
  std::abort();
}

// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; no ':' in label names.
bool IsValidName(absl::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = absl::ascii_isalpha(c) || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

// HELP text escapes only backslash and newline.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Adds `delta` to an atomic double (no fetch_add for doubles in C++17).
void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta,
                                       std::memory_order_relaxed)) {
  }
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (error != std::errc()) return "NaN";  // cannot happen with 64 bytes
  return std::string(buffer, end);
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Die("histogram bounds must be finite and strictly increasing");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  // The first bound >= value; NaN lands in +Inf.
  size_t i = std::isnan(value)
                 ? bounds_.size()
                 : static_cast<size_t>(
                       std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                       bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.reserve(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

MetricFamilyBase::MetricFamilyBase(std::string name, std::string help,
                                   const char* type,
                                   std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {
  if (!IsValidName(name_, /*allow_colon=*/true)) {
    Die(absl::StrCat("invalid metric name \"", name_, "\""));
  }
  for (size_t i = 0; i < label_names_.size(); ++i) {
    const std::string& label = label_names_[i];
    if (!IsValidName(label, /*allow_colon=*/false) ||
        absl::StartsWith(label, "__") ||
        (label == "le" && std::string(type_) == "histogram") ||
        std::count(label_names_.begin(), label_names_.begin() + i, label) > 0) {
      Die(absl::StrCat("invalid label name \"", label, "\" of ", name_));
    }
  }
}

void MetricFamilyBase::CheckLabelValues(
    const std::vector<std::string>& label_values) const {
  if (label_values.size() != label_names_.size()) {
    Die(absl::StrCat(name_, " takes ", label_names_.size(),
                     " label values, not ", label_values.size()));
  }
}

std::string MetricFamilyBase::LabelText(
    const std::vector<std::string>& label_values,
    absl::string_view extra) const {
  if (label_names_.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < label_names_.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, label_names_[i], "=\"",
                    EscapeLabelValue(label_values[i]), "\"");
  }
  if (!extra.empty()) {
    if (!label_names_.empty()) out += ',';
    out.append(extra.data(), extra.size());
  }
  return out;
}

void MetricFamilyBase::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", type_, "\n");
  RenderSamples(out);
}

template <class T>
T* MetricFamily<T>::Get(const std::vector<std::string>& label_values) {
  CheckLabelValues(label_values);
  absl::MutexLock lock(&mu_);
  Child& child = children_[label_values];
  if (child.callback) {
    Die(absl::StrCat(name_, ": a child is computed by a callback"));
  }
  if (child.metric == nullptr) child.metric = make_();
  return child.metric.get();
}

template <class T>
void MetricFamily<T>::AddCallback(const std::vector<std::string>& label_values,
                                  std::function<double()> value) {
  if constexpr (std::is_same_v<T, Histogram>) {
    Die(absl::StrCat(name_, ": histograms cannot be callbacks"));
  }
  CheckLabelValues(label_values);
  absl::MutexLock lock(&mu_);
  Child& child = children_[label_values];
  if (child.metric != nullptr || child.callback) {
    Die(absl::StrCat(name_, ": the child exists already"));
  }
  child.callback = std::move(value);
}

template <class T>
void MetricFamily<T>::RenderSamples(std::string* out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [label_values, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const Histogram& h = *child.metric;
      Histogram::Snapshot s = h.Read();
      for (size_t i = 0; i <= h.bounds().size(); ++i) {
        std::string le = i < h.bounds().size()
                             ? FormatMetricValue(h.bounds()[i])
                             : std::string("+Inf");
        absl::StrAppend(
            out, name_, "_bucket",
            LabelText(label_values, absl::StrCat("le=\"", le, "\"")), "} ",
            s.cumulative[i], "\n");
      }
      std::string labels = LabelText(label_values, "");
      if (!labels.empty()) labels += '}';
      absl::StrAppend(out, name_, "_sum", labels, " ", FormatMetricValue(s.sum),
                      "\n");
      absl::StrAppend(out, name_, "_count", labels, " ", s.cumulative.back(),
                      "\n");
    } else {
      std::string labels = LabelText(label_values, "");
      if (!labels.empty()) labels += '}';
      std::string value;
      if (child.callback) {
        value = FormatMetricValue(child.callback());
      } else if constexpr (std::is_same_v<T, Counter>) {
        value = absl::StrCat(child.metric->value());
      } else {
        value = FormatMetricValue(child.metric->value());
      }
      absl::StrAppend(out, name_, labels, " ", value, "\n");
    }
  }
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

template <class T>
MetricFamily<T>* MetricsRegistry::Add(std::unique_ptr<MetricFamily<T>> family) {
  MetricFamily<T>* raw = family.get();
  absl::MutexLock lock(&mu_);
  auto [it, added] = families_.emplace(family->name(), std::move(family));
  if (!added) Die(absl::StrCat("metric ", it->first, " registered twice"));
  return raw;
}

CounterFamily* MetricsRegistry::AddCounterFamily(
    std::string name, std::string help, std::vector<std::string> label_names) {
  return Add(std::make_unique<CounterFamily>(
      std::move(name), std::move(help), "counter", std::move(label_names),
      [] { return std::make_unique<Counter>(); }));
}

GaugeFamily* MetricsRegistry::AddGaugeFamily(
    std::string name, std::string help, std::vector<std::string> label_names) {
  return Add(std::make_unique<GaugeFamily>(
      std::move(name), std::move(help), "gauge", std::move(label_names),
      [] { return std::make_unique<Gauge>(); }));
}

HistogramFamily* MetricsRegistry::AddHistogramFamily(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  Histogram check(bounds);  // dies here, at registration, on bad bounds
  return Add(std::make_unique<HistogramFamily>(
      std::move(name), std::move(help), "histogram", std::move(label_names),
      [bounds = std::move(bounds)] {
        return std::make_unique<Histogram>(bounds);
      }));
}

Counter* MetricsRegistry::AddCounter(std::string name, std::string help) {
  return AddCounterFamily(std::move(name), std::move(help), {})->Get({});
}

Gauge* MetricsRegistry::AddGauge(std::string name, std::string help) {
  return AddGaugeFamily(std::move(name), std::move(help), {})->Get({});
}

Histogram* MetricsRegistry::AddHistogram(std::string name, std::string help,
                                         std::vector<double> bounds) {
  return AddHistogramFamily(std::move(name), std::move(help), {},
                            std::move(bounds))
      ->Get({});
}

void MetricsRegistry::AddCounterCallback(std::string name, std::string help,
                                         std::function<double()> value) {
  AddCounterFamily(std::move(name), std::move(help), {})
      ->AddCallback({}, std::move(value));
}

void MetricsRegistry::AddGaugeCallback(std::string name, std::string help,
                                       std::function<double()> value) {
  AddGaugeFamily(std::move(name), std::move(help), {})
      ->AddCallback({}, std::move(value));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& [name, family] : families_) family->Render(&out);
  return out;
}

}  // namespace rio::util
