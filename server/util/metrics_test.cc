#include "server/util/metrics.h"

#include <limits>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace rio::util {
namespace {

TEST(Metrics, EmptyRegistryRendersNothing) {
  MetricsRegistry registry;
  EXPECT_EQ(registry.Render(), "");
}

TEST(Metrics, CounterAndGaugeRenderWithHelpAndType) {
  MetricsRegistry registry;
  Counter* emits = registry.AddCounter("rio_emits_total", "Emits accepted.");
  Gauge* depth = registry.AddGauge("rio_depth", "Queue depth.");
  emits->Increment();
  emits->Increment(41);
  depth->Set(2.5);
  depth->Add(-1);
  EXPECT_EQ(emits->value(), 42u);
  EXPECT_EQ(registry.Render(),
            "# HELP rio_depth Queue depth.\n"
            "# TYPE rio_depth gauge\n"
            "rio_depth 1.5\n"
            "# HELP rio_emits_total Emits accepted.\n"
            "# TYPE rio_emits_total counter\n"
            "rio_emits_total 42\n");
}

TEST(Metrics, FamiliesAreSortedByNameAndChildrenByLabelValues) {
  MetricsRegistry registry;
  CounterFamily* attempts = registry.AddCounterFamily(
      "rio_attempts_total", "Attempts.", {"outcome", "class"});
  registry.AddCounter("rio_a_total", "First.");
  attempts->Get({"succeeded", ""})->Increment(3);
  attempts->Get({"failed", "timeout"})->Increment();
  attempts->Get({"failed", "dns"});  // created, never incremented
  // The same child every time.
  EXPECT_EQ(attempts->Get({"succeeded", ""}), attempts->Get({"succeeded", ""}));
  EXPECT_EQ(registry.Render(),
            "# HELP rio_a_total First.\n"
            "# TYPE rio_a_total counter\n"
            "rio_a_total 0\n"
            "# HELP rio_attempts_total Attempts.\n"
            "# TYPE rio_attempts_total counter\n"
            "rio_attempts_total{outcome=\"failed\",class=\"dns\"} 0\n"
            "rio_attempts_total{outcome=\"failed\",class=\"timeout\"} 1\n"
            "rio_attempts_total{outcome=\"succeeded\",class=\"\"} 3\n");
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry registry;
  GaugeFamily* g = registry.AddGaugeFamily(
      "rio_odd", "Back\\slash and\nnewline \"quoted\".", {"v"});
  g->Get({"a\"b\\c\nd"})->Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP rio_odd Back\\\\slash and\\nnewline \"quoted\".\n"
            "# TYPE rio_odd gauge\n"
            "rio_odd{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfEqualToCount) {
  MetricsRegistry registry;
  Histogram* h = registry.AddHistogram("rio_latency_seconds", "Latency.",
                                       {0.005, 0.1, 1, 30});
  h->Observe(0.001);
  h->Observe(0.005);  // bounds are inclusive
  h->Observe(0.25);
  h->Observe(2);
  h->Observe(100);
  EXPECT_EQ(registry.Render(),
            "# HELP rio_latency_seconds Latency.\n"
            "# TYPE rio_latency_seconds histogram\n"
            "rio_latency_seconds_bucket{le=\"0.005\"} 2\n"
            "rio_latency_seconds_bucket{le=\"0.1\"} 2\n"
            "rio_latency_seconds_bucket{le=\"1\"} 3\n"
            "rio_latency_seconds_bucket{le=\"30\"} 4\n"
            "rio_latency_seconds_bucket{le=\"+Inf\"} 5\n"
            "rio_latency_seconds_sum 102.256\n"
            "rio_latency_seconds_count 5\n");
}

TEST(Metrics, LabelledHistogramPutsLeLast) {
  MetricsRegistry registry;
  HistogramFamily* f =
      registry.AddHistogramFamily("rio_size_bytes", "Sizes.", {"kind"}, {10});
  f->Get({"json"})->Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP rio_size_bytes Sizes.\n"
            "# TYPE rio_size_bytes histogram\n"
            "rio_size_bytes_bucket{kind=\"json\",le=\"10\"} 1\n"
            "rio_size_bytes_bucket{kind=\"json\",le=\"+Inf\"} 1\n"
            "rio_size_bytes_sum{kind=\"json\"} 3\n"
            "rio_size_bytes_count{kind=\"json\"} 1\n");
}

TEST(Metrics, CallbacksAreReadAtRenderTime) {
  MetricsRegistry registry;
  double in_flight = 3;
  uint64_t errors = 7;
  registry.AddGaugeCallback("rio_in_flight", "In flight.",
                            [&] { return in_flight; });
  CounterFamily* db = registry.AddCounterFamily("rio_db_errors_total",
                                                "Database errors.", {"kind"});
  db->AddCallback({"statement"}, [&] { return static_cast<double>(errors); });
  db->Get({"connect"})->Increment(2);
  in_flight = 4;
  errors = 9;
  EXPECT_EQ(registry.Render(),
            "# HELP rio_db_errors_total Database errors.\n"
            "# TYPE rio_db_errors_total counter\n"
            "rio_db_errors_total{kind=\"connect\"} 2\n"
            "rio_db_errors_total{kind=\"statement\"} 9\n"
            "# HELP rio_in_flight In flight.\n"
            "# TYPE rio_in_flight gauge\n"
            "rio_in_flight 4\n");
}

TEST(Metrics, ValuesAreFormattedForPrometheus) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-2), "-2");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(1700000000.125), "1700000000.125");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()),
            "-Inf");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  Counter* c = registry.AddCounter("rio_c_total", "C.");
  Gauge* g = registry.AddGauge("rio_g", "G.");
  Histogram* h = registry.AddHistogram("rio_h", "H.", {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Increment();
        g->Add(1);
        h->Observe(0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000u);
  EXPECT_EQ(g->value(), 40000);
  Histogram::Snapshot s = h->Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{40000, 40000}));
  EXPECT_EQ(s.sum, 20000);
}

TEST(MetricsDeathTest, ProgrammingErrorsAbort) {
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("rio_x_total", "X.");
        registry.AddCounter("rio_x_total", "X again.");
      },
      "registered twice");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounter("rio-bad", "Bad.");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddCounterFamily("rio_y_total", "Y.", {"a"})->Get({"1", "2"});
      },
      "takes 1 label values, not 2");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddHistogramFamily("rio_z", "Z.", {"le"}, {1});
      },
      "invalid label name");
  EXPECT_DEATH(
      {
        MetricsRegistry registry;
        registry.AddHistogram("rio_w", "W.", {1, 1});
      },
      "strictly increasing");
}

}  // namespace
}  // namespace rio::util
