// Per-handler counters by minute and by hour (delivery_counts and
// attempt_counts, migration 8): how the outcome writer adds attempts to
// them, how GetHandlerStats reads them, and how retention drops old ones.
// Triggers on deliveries keep the delivery counters (store/migrations.cc).
//
// A window is counted in whole spans: minutes for windows up to 6 hours,
// hours for longer ones, from the start of the span that holds
// now - window. Latency percentiles come from a histogram with bucket edges
// at most 50% apart (kLatencyBoundsUs), interpolated within the bucket.
//
// Thread-safety: the functions use the connection they are given, which is
// not shared; AttemptTally is a value.
#ifndef RIO_SERVER_STORE_STATS_STORE_H_
#define RIO_SERVER_STORE_STATS_STORE_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/store/pg.h"

namespace rio::store {

// The histogram's bucket bounds in microseconds (rio_latency_bounds_us()).
// Bucket k counts durations d with bounds[k - 1] <= d < bounds[k]; bucket 0
// those below bounds[0], the last those from the last bound up.
absl::Span<const int64_t> LatencyBoundsUs();
int LatencyBucket(int64_t duration_us);

// The duration below which a fraction `q` (0..1) of the histogram's counts
// fall, in milliseconds, interpolated within its bucket; 0 for an empty
// histogram. The last (unbounded) bucket answers with its lower bound.
double LatencyPercentileMs(absl::Span<const int64_t> histogram, double q);

// The span a window is counted in: a minute up to 6 hours, else an hour.
absl::Duration StatsSpan(absl::Duration window);

// An expression (a scalar subquery) that adds the deliveries of `rows`, a
// CTE with columns handler_id, create_time and status, to delivery_counts in
// the statement that wrote them. With `left_pending`, each of them also
// leaves PENDING (the outcome writer's update, which moves only PENDING
// ones). Other changes of status are counted by a trigger (migration 8).
std::string CountDeliveriesSql(absl::string_view rows, bool left_pending);

// Attempts, to be added to attempt_counts in the transaction that writes
// them.
class AttemptTally {
 public:
  // `responded`: the receiver answered (its duration goes in the histogram).
  void Add(absl::string_view handler_id, absl::Time start, int64_t duration_us,
           bool responded, bool failed);
  bool empty() const { return rows_.empty(); }
  // One statement. Attempts of a handler deleted meanwhile are dropped.
  absl::Status Write(PgConnection& conn) const;

 private:
  struct Counts {
    int64_t attempts = 0;
    int64_t failed = 0;
    std::vector<int64_t> latency;
  };
  // (handler id, span in seconds, span start in seconds since the epoch),
  // in the order rows are locked.
  absl::btree_map<std::tuple<std::string, int, int64_t>, Counts> rows_;
};

struct StatsCounts {
  int64_t pending = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  int64_t attempts = 0;
  int64_t failed_attempts = 0;
};

struct HandlerStatsRows {
  bool enabled = false;
  std::string disabled_reason;
  int64_t consecutive_failures = 0;
  absl::Time since;  // where counting starts
  StatsCounts total;
  std::vector<int64_t> latency;  // histogram of the window
  // With a bucket asked for: every bucket from `since` to now, oldest first.
  std::vector<std::pair<absl::Time, StatsCounts>> buckets;
};

// The counters of handler `handler_id` over `window`; with a non-zero
// `bucket` (a multiple of StatsSpan(window)), also per bucket, and `since`
// is then the start of a bucket. NOT_FOUND when there is no such handler.
absl::StatusOr<HandlerStatsRows> ReadHandlerStats(PgConnection& conn,
                                                  const std::string& handler_id,
                                                  absl::Duration window,
                                                  absl::Duration bucket);

// Deletes minute rows older than 7 hours and hour rows older than 90 days
// and an hour; returns how many rows went.
absl::StatusOr<int64_t> PruneStats(PgConnection& conn);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_STATS_STORE_H_
