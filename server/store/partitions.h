// The time ranges that partition messages, deliveries and attempts
// (migration 9, store/migrations.cc): creating them ahead of the clock and
// dropping whole ranges once they are older than the retention.
//
// A range is three tables, messages_<suffix>, deliveries_<suffix> and
// attempts_<suffix>, listed in rio_history_partitions with its bounds. Ids
// are version-7 UUIDs that begin with their millisecond (a delivery's with
// its message's), so a message, its deliveries and their attempts share a
// range, and a row whose range does not exist cannot be written: rio-server
// creates ranges before it serves and then keeps `ahead` of the clock
// covered (Retention does, on its own thread).
//
// Dropping a range is constant time, whatever it holds, and takes no lock
// that emits, outcome writes or reads wait for: each table is detached from
// its parent with DETACH PARTITION ... CONCURRENTLY (which waits for the
// transactions still using it instead of blocking new ones), and the three
// detached tables, no one's any more, are dropped in one short transaction.
// A range that still holds a PENDING delivery (a retry not yet due, or one an
// operator re-queued) is kept whole and tried again at the next pass: the
// deliveries table is checked before it is detached and again after (a
// delivery re-queued in between puts the table back and keeps the range), and
// once detached nothing can make a delivery in it PENDING. A drop that waits
// longer than `wait` for other transactions gives up (kBusy) and is finished
// at a later pass (a detach left half-done is finalized then). The parent of
// a DEFAULT partition (migration 9's legacy range of random ids) cannot
// detach concurrently: there the detach takes the parent's ACCESS EXCLUSIVE
// lock for an instant.
//
// Thread-safety: the functions use the connection they are given, which is
// not shared.
#ifndef RIO_SERVER_STORE_PARTITIONS_H_
#define RIO_SERVER_STORE_PARTITIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/pg.h"

namespace rio::store {

// Creates the missing ranges, `width` long on a grid from the Unix epoch,
// that cover the database's now() - width to now() + ahead; returns how
// many. Several instances may call it at once (an advisory lock orders
// them). width: at least a second.
absl::StatusOr<int> CreatePartitions(PgConnection& conn, absl::Duration width,
                                     absl::Duration ahead);

struct Partition {
  std::string suffix;      // "legacy" or p<YYYYMMDD>t<HHMMSS> (UTC)
  std::string upper_time;  // every row's time is before it (text)
};

// The ranges whose every row is older than `cutoff` (a timestamptz in
// text), oldest first.
absl::StatusOr<std::vector<Partition>> ExpiredPartitions(
    PgConnection& conn, const std::string& cutoff);

enum class DropResult {
  kDropped,
  kHeld,  // a delivery in it is PENDING: kept
  kBusy,  // waited longer than `wait` for other transactions: kept for now
};

// Drops the range `suffix` (as ExpiredPartitions names it) unless it holds a
// PENDING delivery.
absl::StatusOr<DropResult> DropPartition(PgConnection& conn,
                                         const std::string& suffix,
                                         absl::Duration wait);

}  // namespace rio::store

#endif  // RIO_SERVER_STORE_PARTITIONS_H_
