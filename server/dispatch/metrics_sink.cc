#include "server/dispatch/metrics_sink.h"

#include <utility>

namespace rio::dispatch {

const std::vector<double>& AttemptDurationBuckets() {
  static const auto* buckets = new std::vector<double>{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

MetricsSink::MetricsSink(util::MetricsRegistry& registry, OutcomeSink* next)
    : next_(next) {
  util::CounterFamily* attempts = registry.AddCounterFamily(
      "rio_attempts_total",
      "Delivery attempts by what followed them: succeeded, retry (another "
      "attempt is scheduled), failed (attempts exhausted, or 410 Gone), "
      "cancelled (resolved without a call: the handler was disabled or "
      "deleted).",
      {"outcome"});
  attempts_[kSucceeded] = attempts->Get({"succeeded"});
  attempts_[kRetry] = attempts->Get({"retry"});
  attempts_[kFailed] = attempts->Get({"failed"});
  attempts_[kCancelled] = attempts->Get({"cancelled"});

  util::CounterFamily* errors = registry.AddCounterFamily(
      "rio_attempt_errors_total",
      "Delivery attempts that did not succeed, by error class.",
      {"error_class"});
  for (int c = 1; c < kErrorClasses; ++c) {
    errors_[c] =
        errors->Get({std::string(ErrorClassName(static_cast<ErrorClass>(c)))});
  }

  util::CounterFamily* finished = registry.AddCounterFamily(
      "rio_deliveries_finished_total",
      "Deliveries that reached a final status.", {"status"});
  finished_[kSucceeded] = finished->Get({"succeeded"});
  finished_[kFailed] = finished->Get({"failed"});
  finished_[kCancelled] = finished->Get({"cancelled"});

  duration_ = registry.AddHistogram(
      "rio_attempt_duration_seconds",
      "Duration of the HTTP calls made to handlers, from start to the end of "
      "the response or the error.",
      AttemptDurationBuckets());
}

void MetricsSink::Record(AttemptOutcome outcome) {
  Outcome what;
  switch (outcome.decision.verdict) {
    case Verdict::kSucceeded:
      what = kSucceeded;
      break;
    case Verdict::kRetry:
      what = kRetry;
      break;
    default:
      what = outcome.cancelled ? kCancelled : kFailed;
      break;
  }
  attempts_[what]->Increment();
  if (what != kRetry) finished_[what]->Increment();
  int error_class = static_cast<int>(outcome.decision.error_class);
  if (error_class > 0 && error_class < kErrorClasses) {
    errors_[error_class]->Increment();
  }
  if (outcome.attempted) {
    duration_->Observe(static_cast<double>(outcome.duration_us) / 1e6);
  }
  next_->Record(std::move(outcome));
}

}  // namespace rio::dispatch
