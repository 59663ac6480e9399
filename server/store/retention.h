// Retention: deletes what is older than `retention` so the database does not
// grow without bound. A background thread runs a pass soon after start and
// then every `interval`; each pass
//   - takes a PostgreSQL advisory lock with pg_try_advisory_lock, so with
//     several instances on one database only one deletes at a time (the
//     others skip the pass);
//   - per project, walks messages older than the cutoff (now() - retention)
//     oldest first through the index messages_by_time (project_id,
//     create_time DESC), in batches of `batch_size`, each batch a short
//     transaction, with a pause between batches so emits and outcome writes
//     are never held up;
//   - deletes each message with its deliveries and their attempts, unless one
//     of its deliveries is still PENDING (such a message is kept whole, and
//     goes in a later pass once it is finished);
//   - deletes that project's recoveries that finished before the cutoff;
// and then drops the per-handler counters' minute rows older than 7 hours
// and hour rows older than 90 days (store/stats_store.h), whatever the
// retention: statistics outlive the history they count.
//
// A delivery re-queued (made PENDING again) by an operator while its message
// is being deleted is not lost: deliveries are deleted first, each re-checked
// for PENDING under its row lock, and then only messages left with no
// delivery at all.
//
// Metrics: rio_retention_deleted_total{table} (messages, deliveries,
// attempts, recoveries, counters) and rio_retention_runs_total{result}
// (completed, skipped: another instance held the lock, failed: a database
// error; the pass is tried again after `interval`).
//
// Thread-safety: Start/Stop from one thread; RunOnce on a connection used by
// no other thread.
#ifndef RIO_SERVER_STORE_RETENTION_H_
#define RIO_SERVER_STORE_RETENTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/pg.h"
#include "server/util/metrics.h"

namespace rio::store {

// The advisory lock key a retention pass holds: the schema migration lock's
// ("rio" in ASCII) + 1.
inline constexpr int64_t kRetentionLockKey = 7498096;

class Retention {
 public:
  struct Options {
    absl::Duration retention = absl::Hours(24 * 30);  // > 0
    absl::Duration interval = absl::Minutes(5);
    // The first pass comes after min(first_delay, interval).
    absl::Duration first_delay = absl::Seconds(10);
    int batch_size = 500;
    absl::Duration pause = absl::Milliseconds(20);  // between batches
  };

  // What one pass deleted.
  struct Counts {
    bool skipped = false;  // another instance held the lock: nothing done
    int64_t messages = 0;
    int64_t deliveries = 0;
    int64_t attempts = 0;
    int64_t recoveries = 0;
    int64_t counters = 0;  // rows of delivery_counts and attempt_counts
  };

  // Registers the metrics above in `registry`.
  Retention(Options options, std::string database_url,
            util::MetricsRegistry& registry);
  ~Retention();  // Stop()

  void Start();
  // Stops (a pass in progress ends after its current batch) and joins.
  // Idempotent.
  void Stop();

  // One pass through `conn`. Counts are also added to the metrics as each
  // batch commits. An error ends the pass (what was committed stays
  // deleted).
  absl::StatusOr<Counts> RunOnce(PgConnection& conn);

 private:
  void Loop();
  // Deletes one project's old messages; adds to `counts`.
  absl::Status DeleteMessages(PgConnection& conn, const std::string& project,
                              const std::string& cutoff, Counts& counts);
  absl::Status DeleteRecoveries(PgConnection& conn, const std::string& project,
                                const std::string& cutoff, Counts& counts);
  // Waits for `duration` unless stopped first; false when stopping.
  bool Pause(absl::Duration duration);
  bool stopping();

  const Options options_;
  const std::string url_;
  // Set by the constructor, constant after.
  util::Counter* deleted_messages_ = nullptr;
  util::Counter* deleted_deliveries_ = nullptr;
  util::Counter* deleted_attempts_ = nullptr;
  util::Counter* deleted_recoveries_ = nullptr;
  util::Counter* deleted_counters_ = nullptr;
  util::Counter* runs_completed_ = nullptr;
  util::Counter* runs_skipped_ = nullptr;
  util::Counter* runs_failed_ = nullptr;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_RETENTION_H_
