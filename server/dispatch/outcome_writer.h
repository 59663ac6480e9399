// Writes attempt outcomes back to PostgreSQL in batches: one transaction
// per batch inserts the attempt rows, moves each delivery to its next state
// (releasing its lease), keeps each handler's count of consecutive failed
// attempts, and disables handlers that answered 410 or failed for too long.
// An outcome waits up to 10 ms for others to share its transaction, so that
// moderate rates do not cost PostgreSQL a transaction per call.
//
// Outcomes are never dropped: when the database is unavailable the batch is
// kept and retried. A row the database refuses for what is in it is found by
// writing the batch one by one, and recorded without the receiver's reply
// (Quarantined), so no outcome can block the others or be retried forever. If
// the process dies first, the deliveries are still leased to it and are sent
// again once its heartbeat goes stale (at-least-once).
//
// Thread-safety: Record from any thread; Start/Stop from one.
#ifndef RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_
#define RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/dispatcher.h"
#include "server/store/pg.h"

namespace rio::dispatch {

// When a failing handler is disabled: after `failures` consecutive failed
// attempts (no success in between) spanning at least `span`. 0 failures:
// never.
struct HealthPolicy {
  int failures = 50;
  absl::Duration span = absl::Hours(24);
};

// `o` as it is recorded when the database refused its row (its receiver's
// bytes, say): the attempt keeps its number, times and status code, gets
// ErrorClass::kInternalError and a message saying why, and loses the reply;
// the delivery moves on as o.decision says.
AttemptOutcome Quarantined(AttemptOutcome o, const absl::Status& refusal);

class OutcomeWriter : public OutcomeSink {
 public:
  // `on_retry_scheduled(t)` is called after a commit that scheduled a retry
  // due at `t` (the earliest in the batch), so the scheduler can wake then.
  // `on_written(batch)` (optional) is called with every committed batch, on
  // the writer's thread.
  using OnWritten = std::function<void(const std::vector<AttemptOutcome>&)>;
  OutcomeWriter(std::string database_url,
                std::function<void(absl::Time)> on_retry_scheduled,
                HealthPolicy health = {}, OnWritten on_written = nullptr);
  ~OutcomeWriter() override;

  void Start();
  void Record(AttemptOutcome outcome) override;
  bool Holds(const std::string& delivery_id) const override;
  size_t Backlog() const override;
  // Writes everything recorded so far (retrying for up to `deadline`) and
  // joins the thread.
  void Stop(absl::Duration deadline);

 private:
  void Loop();
  // Writes each outcome of `batch` in a transaction of its own; one the
  // database refuses is written again as Quarantined(). Returns the outcomes
  // that could not be written because the database is unavailable.
  std::vector<AttemptOutcome> WriteOneByOne(store::PgConnection& conn,
                                            std::vector<AttemptOutcome> batch);
  // The outcomes of `batch` are written (or dropped): not held any more.
  void Forget(const std::vector<AttemptOutcome>& batch);
  absl::Status Write(store::PgConnection& conn,
                     const std::vector<AttemptOutcome>& batch);
  // Counts the batch's failed attempts per handler (a success resets the
  // count) and disables the handlers the health policy gives up on.
  absl::Status UpdateHealth(store::PgConnection& conn,
                            const std::vector<AttemptOutcome>& batch);

  const std::string url_;
  const std::function<void(absl::Time)> on_retry_scheduled_;
  const HealthPolicy health_;
  const OnWritten on_written_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  std::vector<AttemptOutcome> queue_ ABSL_GUARDED_BY(mu_);
  // Delivery ids of the outcomes recorded and not yet written.
  absl::flat_hash_set<std::string> unwritten_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_OUTCOME_WRITER_H_
