// Prometheus metrics kept in memory and rendered in the text exposition
// format 0.0.4 when scraped.
//
// The hot path takes no lock and allocates nothing: Counter::Increment,
// Gauge::Set/Add and Histogram::Observe are relaxed atomic operations on
// objects whose addresses never change. Labelled children are looked up in
// their family (under a mutex, created on first use) once, at set-up, or on
// rare paths such as errors; callers keep the pointers.
//
// Render() lists families sorted by name and each family's children sorted by
// label values, so its output is stable. A value may also be computed at
// scrape time by a callback (a gauge read from another object, a counter kept
// elsewhere); callbacks run on the scraping thread while their family's mutex
// is held, so they must be cheap, thread-safe and must not touch the
// registry.
//
// Thread-safety: everything here is thread-safe. Names and label sets are
// fixed by the program, so a malformed or repeated name, or a label value
// count that does not match the family, is a bug: the process aborts.
#ifndef RIO_SERVER_UTIL_METRICS_H_
#define RIO_SERVER_UTIL_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace rio::util {

// The Content-Type of Render()'s output.
inline constexpr absl::string_view kMetricsContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// A monotonically increasing count.
class Counter {
 public:
  void Increment(uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets (upper bounds, inclusive) and sums
// them. The +Inf bucket is implicit.
class Histogram {
 public:
  // REQUIRES: `bounds` finite and strictly increasing.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  // Per bucket, not cumulative; the last one is +Inf.
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Type-independent part of a family, for the registry.
class MetricFamilyBase {
 public:
  virtual ~MetricFamilyBase() = default;
  const std::string& name() const { return name_; }
  // Appends the HELP and TYPE lines and every sample.
  void Render(std::string* out) const;

 protected:
  MetricFamilyBase(std::string name, std::string help, const char* type,
                   std::vector<std::string> label_names);
  // Appends the samples of every child.
  virtual void RenderSamples(std::string* out) const = 0;
  // Aborts unless `label_values` fits the label names.
  void CheckLabelValues(const std::vector<std::string>& label_values) const;
  // `{a="x",b="y"` (no closing brace) for these label values, or "" when
  // the family has no labels and `extra` is empty; `extra` is appended as
  // one more already-rendered label (e.g. `le="0.5"`).
  std::string LabelText(const std::vector<std::string>& label_values,
                        absl::string_view extra) const;

  const std::string name_;
  const std::string help_;
  const char* const type_;
  const std::vector<std::string> label_names_;
};

// One metric name and its children, one per combination of label values.
// T is Counter, Gauge or Histogram.
template <class T>
class MetricFamily final : public MetricFamilyBase {
 public:
  MetricFamily(std::string name, std::string help, const char* type,
               std::vector<std::string> label_names,
               std::function<std::unique_ptr<T>()> make)
      : MetricFamilyBase(std::move(name), std::move(help), type,
                         std::move(label_names)),
        make_(std::move(make)) {}

  // The child with these label values (one per label name, in order),
  // created at first use. Never null; valid as long as the registry.
  T* Get(const std::vector<std::string>& label_values);

  // A child whose value `value()` computes at scrape time (counters and
  // gauges only).
  void AddCallback(const std::vector<std::string>& label_values,
                   std::function<double()> value);

 private:
  struct Child {
    std::unique_ptr<T> metric;
    std::function<double()> callback;
  };
  void RenderSamples(std::string* out) const override;

  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, Child> children_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

// Owns every family; the process has one, shared by whoever counts.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Unlabelled metrics: the family's only child.
  Counter* AddCounter(std::string name, std::string help);
  Gauge* AddGauge(std::string name, std::string help);
  Histogram* AddHistogram(std::string name, std::string help,
                          std::vector<double> bounds);
  // Unlabelled metrics computed at scrape time.
  void AddCounterCallback(std::string name, std::string help,
                          std::function<double()> value);
  void AddGaugeCallback(std::string name, std::string help,
                        std::function<double()> value);

  CounterFamily* AddCounterFamily(std::string name, std::string help,
                                  std::vector<std::string> label_names);
  GaugeFamily* AddGaugeFamily(std::string name, std::string help,
                              std::vector<std::string> label_names);
  HistogramFamily* AddHistogramFamily(std::string name, std::string help,
                                      std::vector<std::string> label_names,
                                      std::vector<double> bounds);

  // Every family in the text exposition format.
  std::string Render() const;

 private:
  template <class T>
  MetricFamily<T>* Add(std::unique_ptr<MetricFamily<T>> family);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamilyBase>> families_
      ABSL_GUARDED_BY(mu_);
};

// How a sample value is written: shortest round-trip decimal, "+Inf",
// "-Inf" or "NaN".
std::string FormatMetricValue(double value);

// A label value escaped for the exposition format (\\, \" and \n).
std::string EscapeLabelValue(absl::string_view value);

}  // namespace rio::util

#endif  // RIO_SERVER_UTIL_METRICS_H_
