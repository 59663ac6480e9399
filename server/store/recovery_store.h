// Re-triggering deliveries: one at a time (Redeliver) or in bulk (recovery
// jobs, table `recoveries`).
//
// A re-triggered delivery becomes PENDING, due now, with `manual` set (its
// next attempt is recorded as manual), and rio_due is notified so that a
// scheduler claims it at once. Its attempt numbers continue where they
// were, and so does the retry schedule.
//
// A recovery job re-queues the FAILED and CANCELLED deliveries of enabled
// handlers that match its filters, oldest first, in batches paced to its
// rate. Each batch is one transaction that re-queues deliveries and advances
// the job's cursor, so a job survives restarts and any instance may run its
// next batch (SKIP LOCKED).
#ifndef RIO_SERVER_STORE_RECOVERY_STORE_H_
#define RIO_SERVER_STORE_RECOVERY_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rio/v1/delivery.pb.h"
#include "server/store/pg.h"

namespace rio::store {

// What a recovery re-queues. Empty strings and absent times match all.
struct RecoveryFilter {
  int64_t project_id = 0;
  std::string handler_id;
  std::string event;
  std::optional<absl::Time> since;
  absl::Time until;  // exclusive
};

// Re-queues delivery `id` now. NOT_FOUND for an unknown id; ABORTED while a
// running instance holds it (an attempt is in flight or about to start);
// FAILED_PRECONDITION when its handler is disabled. `lease_timeout` is the
// instances' lease timeout (a lease of an instance whose heartbeat is older
// has lapsed).
absl::Status Redeliver(PgConnection& conn, const std::string& id,
                       absl::Duration lease_timeout);

// How many deliveries a recovery with `filter` would re-queue now.
absl::StatusOr<int64_t> CountRecoverable(PgConnection& conn,
                                         const RecoveryFilter& filter);

// Creates a RUNNING recovery job and answers it (with its count).
absl::StatusOr<v1::Recovery> CreateRecovery(PgConnection& conn,
                                            const RecoveryFilter& filter,
                                            int rate_per_second);
absl::StatusOr<v1::Recovery> GetRecovery(PgConnection& conn,
                                         const std::string& id);
absl::StatusOr<std::vector<v1::Recovery>> ListRecoveries(PgConnection& conn,
                                                         int64_t project_id);
// RUNNING -> CANCELLED; a CANCELLED job is answered as it is;
// FAILED_PRECONDITION for a DONE one.
absl::StatusOr<v1::Recovery> CancelRecovery(PgConnection& conn,
                                            const std::string& id);

// Runs the next batch of one recovery job that is due, if any. Returns when
// the next batch of any running job is due (InfiniteFuture: none).
absl::StatusOr<absl::Time> RunRecoveryBatch(PgConnection& conn);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_RECOVERY_STORE_H_
