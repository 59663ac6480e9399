#include "server/store/partitions.h"

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {

absl::StatusOr<int> CreatePartitions(PgConnection& conn, absl::Duration width,
                                     absl::Duration ahead) {
  const std::string seconds = absl::StrCat(absl::ToInt64Seconds(width));
  RIO_ASSIGN_OR_RETURN(
      PgResult made,
      conn.Exec("SELECT rio_create_partitions(now() - make_interval(secs => "
                "$1), now() + make_interval(secs => $2), make_interval(secs "
                "=> $1))",
                {seconds, absl::StrCat(absl::ToInt64Seconds(ahead))}));
  return static_cast<int>(made.GetInt64(0, 0));
}

absl::StatusOr<std::vector<Partition>> ExpiredPartitions(
    PgConnection& conn, const std::string& cutoff) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT suffix, upper_time::text FROM rio_history_partitions "
                "WHERE upper_time <= $1::timestamptz ORDER BY upper_time",
                {cutoff}));
  std::vector<Partition> expired(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    expired[i].suffix = std::string(r.Get(i, 0));
    expired[i].upper_time = std::string(r.Get(i, 1));
  }
  return expired;
}

absl::StatusOr<DropResult> DropPartition(PgConnection& conn,
                                         const std::string& suffix,
                                         absl::Duration lock_timeout) {
  // Suffixes are Rio's own (rio_create_partitions, the migration's
  // "legacy"), quoted all the same.
  RIO_ASSIGN_OR_RETURN(
      PgResult quoted,
      conn.Exec("SELECT quote_ident('messages_' || $1), quote_ident("
                "'deliveries_' || $1), quote_ident('attempts_' || $1), "
                "to_regclass(quote_ident('deliveries_' || $1)) IS NOT NULL",
                {suffix}));
  const std::string messages(quoted.Get(0, 0));
  const std::string deliveries(quoted.Get(0, 1));
  const std::string attempts(quoted.Get(0, 2));
  const bool has_deliveries = quoted.GetBool(0, 3);
  DropResult result = DropResult::kDropped;
  absl::Status status = conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(
        conn.Exec(absl::StrCat("SET LOCAL lock_timeout = ",
                               absl::ToInt64Milliseconds(lock_timeout)))
            .status());
    if (has_deliveries) {
      // No writer is in flight on it from here on, and none can start.
      RIO_RETURN_IF_ERROR(
          conn.Exec(absl::StrCat("LOCK TABLE ", deliveries, " IN SHARE MODE"))
              .status());
      RIO_ASSIGN_OR_RETURN(
          PgResult pending,
          conn.Exec(absl::StrCat("SELECT EXISTS (SELECT 1 FROM ", deliveries,
                                 " WHERE status = 'PENDING')")));
      if (pending.GetBool(0, 0)) {
        result = DropResult::kHeld;
        return absl::OkStatus();
      }
    }
    // The legacy range may have lost some of its tables already (the
    // migration drops those that were empty).
    RIO_RETURN_IF_ERROR(
        conn.Exec(absl::StrCat("DROP TABLE IF EXISTS ", attempts, ", ",
                               deliveries, ", ", messages))
            .status());
    return conn
        .Exec("DELETE FROM rio_history_partitions WHERE suffix = $1", {suffix})
        .status();
  });
  if (absl::IsDeadlineExceeded(status)) return DropResult::kBusy;
  RIO_RETURN_IF_ERROR(status);
  return result;
}

}  // namespace rio::store
