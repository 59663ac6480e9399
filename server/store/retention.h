// Retention: keeps history partitioned ahead of the clock and forgets what
// is older than `retention`, so the database does not grow without bound.
// A background thread runs a pass soon after start and then every
// `interval`; each pass
//   - creates the time ranges of messages, deliveries and attempts that the
//     next 2 * partition_width + 2 * interval need (store/partitions.h),
//     whatever the retention (CreatePartitionsAhead);
//   - with a retention (> 0), takes a PostgreSQL advisory lock with
//     pg_try_advisory_lock, so with several instances on one database only
//     one deletes at a time (the others skip the rest of the pass), and
//       - drops every range whose rows are all older than the cutoff (now -
//         retention), each in constant time and without blocking the hot
//         path, unless it still holds a PENDING delivery (kept whole, and
//         tried again next pass) or its detach waited longer than
//         `drop_wait` for other transactions (finished at a later pass):
//         history is kept at least `retention` and about `partition_width`
//         longer;
//       - deletes idempotency keys older than min(idempotency_window,
//         retention), and recoveries that finished before the cutoff, in
//         batches of `batch_size`, each a short transaction, with a pause
//         between batches so emits and outcome writes are never held up;
//       - drops the per-handler counters' minute rows older than 7 hours and
//         hour rows older than 90 days (store/stats_store.h), whatever the
//         retention: statistics outlive the history they count.
//
// Metrics: rio_retention_partitions_total{result} (created, dropped, held,
// busy), rio_retention_deleted_total{table} (idempotency_keys, recoveries,
// counters) and rio_retention_runs_total{result} (passes with a retention:
// completed, skipped: another instance held the lock, failed: a database
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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
    absl::Duration retention = absl::Hours(24 * 30);  // 0: keep everything
    absl::Duration interval = absl::Minutes(5);
    // The first pass comes after min(first_delay, interval).
    absl::Duration first_delay = absl::Seconds(10);
    absl::Duration partition_width = absl::Hours(24);  // >= 1 second
    absl::Duration idempotency_window = absl::Hours(24 * 7);
    int batch_size = 500;
    absl::Duration pause = absl::Milliseconds(20);  // between batches
    // How long a partition's drop waits for transactions still using it.
    absl::Duration drop_wait = absl::Seconds(10);
  };

  // What one pass did.
  struct Counts {
    bool skipped = false;  // another instance held the lock: nothing deleted
    int64_t partitions_created = 0;
    int64_t partitions_dropped = 0;
    int64_t partitions_held = 0;  // a delivery still PENDING
    int64_t partitions_busy = 0;  // waited too long for other transactions
    int64_t idempotency_keys = 0;
    int64_t recoveries = 0;
    int64_t counters = 0;  // rows of delivery_counts and attempt_counts
  };

  // Registers the metrics above in `registry`.
  Retention(Options options, std::string database_url,
            util::MetricsRegistry& registry);
  ~Retention();  // Stop()

  void Start();
  // Stops (a pass in progress ends after its current step) and joins.
  // Idempotent.
  void Stop();

  // One pass through `conn`. Counts are also added to the metrics as each
  // step commits. An error ends the pass (what was committed stays).
  absl::StatusOr<Counts> RunOnce(PgConnection& conn);

  // Creates the partitions from now - partition_width to
  // 2 * partition_width + 2 * interval ahead that do not exist yet; returns
  // how many. Each pass does; rio-server also calls it before it serves.
  absl::StatusOr<int> CreatePartitionsAhead(PgConnection& conn);

 private:
  void Loop();
  absl::Status DropPartitions(PgConnection& conn, const std::string& cutoff,
                              Counts& counts);
  absl::Status DeleteIdempotencyKeys(PgConnection& conn, Counts& counts);
  absl::Status DeleteRecoveries(PgConnection& conn, const std::string& project,
                                const std::string& cutoff, Counts& counts);
  // Runs `sql`, whose last parameter (after `params`) is the batch size,
  // until it deletes less than a batch, pausing between batches; adds what
  // it deleted to `metric` and `deleted`.
  absl::Status DeleteInBatches(PgConnection& conn, absl::string_view sql,
                               std::vector<PgParam> params,
                               util::Counter& metric, int64_t& deleted);
  // Waits for `duration` unless stopped first; false when stopping.
  bool Pause(absl::Duration duration);
  bool stopping();

  const Options options_;
  const std::string url_;
  // Set by the constructor, constant after.
  util::Counter* partitions_created_ = nullptr;
  util::Counter* partitions_dropped_ = nullptr;
  util::Counter* partitions_held_ = nullptr;
  util::Counter* partitions_busy_ = nullptr;
  util::Counter* deleted_keys_ = nullptr;
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
