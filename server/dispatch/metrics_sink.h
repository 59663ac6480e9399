// An OutcomeSink that counts every outcome in Prometheus metrics and passes it
// on, unchanged, to the sink that records it (the OutcomeWriter). It sits
// between the producers of outcomes (the Dispatcher, and the Scheduler for
// deliveries it resolves without a call) and the writer.
//
// Counted here, as the dispatcher decided them (before they are written):
//   rio_attempts_total{outcome}            succeeded | retry | failed |
//                                          cancelled (resolved, no call)
//   rio_attempt_errors_total{error_class}  the classes of retry_policy.h
//   rio_attempt_duration_seconds           every HTTP call made
//   rio_deliveries_finished_total{status}  succeeded | failed | cancelled
//
// Thread-safety: Record may be called from any thread, as the wrapped sink
// allows; counting takes no lock and allocates nothing.
#ifndef RIO_SERVER_DISPATCH_METRICS_SINK_H_
#define RIO_SERVER_DISPATCH_METRICS_SINK_H_

#include <array>
#include <vector>

#include "server/dispatch/dispatcher.h"
#include "server/dispatch/job.h"
#include "server/util/metrics.h"

namespace rio::dispatch {

class MetricsSink : public OutcomeSink {
 public:
  // Registers the metrics above in `registry`. `next` must outlive this.
  MetricsSink(util::MetricsRegistry& registry, OutcomeSink* next);

  void Record(AttemptOutcome outcome) override;
  bool Holds(const std::string& delivery_id) const override {
    return next_->Holds(delivery_id);
  }
  size_t Backlog() const override { return next_->Backlog(); }

 private:
  enum Outcome { kSucceeded, kRetry, kFailed, kCancelled, kOutcomes };

  OutcomeSink* const next_;
  std::array<util::Counter*, kOutcomes> attempts_{};
  static constexpr int kErrorClasses = static_cast<int>(ErrorClass::kLast) + 1;
  // By ErrorClass; [kNone] is unused.
  std::array<util::Counter*, kErrorClasses> errors_{};
  // By Outcome; [kRetry] is unused.
  std::array<util::Counter*, kOutcomes> finished_{};
  util::Histogram* duration_;
};

// The upper bounds of rio_attempt_duration_seconds, 5 ms to 30 s.
const std::vector<double>& AttemptDurationBuckets();

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_METRICS_SINK_H_
