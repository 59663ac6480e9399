// Samples the delivery queue in PostgreSQL for metrics, on its own thread
// and connection, every `interval` (never at scrape time):
//
//   rio_pending_deliveries{state="due"}        PENDING, next_attempt_time
//                                              <= now(): waiting for room
//   rio_pending_deliveries{state="scheduled"}  PENDING, next_attempt_time
//                                              later: retries waiting for
//                                              their time, and deliveries
//                                              leased to an instance (a lease
//                                              moves next_attempt_time to
//                                              now() + the lease timeout)
//   rio_oldest_due_delivery_age_seconds        how long the oldest due
//                                              delivery has been due; 0 when
//                                              none is
//   rio_queue_sample_timestamp_seconds         when the last sample was taken
//
// One statement per sample, over the partial index deliveries_due. When it
// fails the gauges keep their last values (pg.cc counts the error) and the
// next interval tries again, reconnecting if needed.
//
// Thread-safety: Start/Stop from one thread.
#ifndef RIO_SERVER_STORE_QUEUE_SAMPLER_H_
#define RIO_SERVER_STORE_QUEUE_SAMPLER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/pg.h"
#include "server/util/metrics.h"

namespace rio::store {

class QueueSampler {
 public:
  // Registers the gauges above in `registry`.
  QueueSampler(std::string database_url, absl::Duration interval,
               util::MetricsRegistry& registry);
  ~QueueSampler();  // Stop()

  // Starts the thread; the first sample is taken at once.
  void Start();
  // Joins the thread. Idempotent.
  void Stop();

  // Takes one sample through `conn` and sets the gauges; on error they are
  // left as they were.
  absl::Status SampleOnce(PgConnection& conn);

 private:
  void Loop();

  const std::string url_;
  const absl::Duration interval_;
  util::GaugeFamily* const pending_;
  util::Gauge* const due_;
  util::Gauge* const scheduled_;
  util::Gauge* const oldest_due_age_;
  util::Gauge* const sample_time_;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_QUEUE_SAMPLER_H_
