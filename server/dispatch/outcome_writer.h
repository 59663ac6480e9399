// Writes attempt outcomes back to PostgreSQL in batches: one transaction
// per batch inserts the attempt rows, moves each delivery to its next state
// (releasing its lease) and disables handlers that answered 410.
//
// Outcomes are never dropped: when the database is unavailable the batch is
// kept and retried. If the process dies first, the deliveries are still
// leased to it and are sent again once its heartbeat goes stale
// (at-least-once).
//
// Thread-safety: Record from any thread; Start/Stop from one.
#ifndef RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_
#define RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/dispatcher.h"
#include "server/store/pg.h"

namespace rio::dispatch {

class OutcomeWriter : public OutcomeSink {
 public:
  // `on_retry_scheduled(t)` is called after a commit that scheduled a retry
  // due at `t` (the earliest in the batch), so the scheduler can wake then.
  OutcomeWriter(std::string database_url,
                std::function<void(absl::Time)> on_retry_scheduled);
  ~OutcomeWriter() override;

  void Start();
  void Record(AttemptOutcome outcome) override;
  // Writes everything recorded so far (retrying for up to `deadline`) and
  // joins the thread.
  void Stop(absl::Duration deadline);

 private:
  void Loop();
  absl::Status Write(store::PgConnection& conn,
                     const std::vector<AttemptOutcome>& batch);

  const std::string url_;
  const std::function<void(absl::Time)> on_retry_scheduled_;
  std::thread thread_;

  absl::Mutex mu_;
  std::vector<AttemptOutcome> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_
