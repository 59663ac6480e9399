#include "server/store/partitions.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
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

namespace {

// One of a range's three tables, as the catalog has it now.
struct Member {
  std::string parent;  // messages, deliveries or attempts
  std::string name;    // quoted
  bool exists = false;
  bool attached = false;   // a partition of `parent` (maybe detaching)
  bool detaching = false;  // a DETACH ... CONCURRENTLY did not finish
  std::string bound;       // "FOR VALUES FROM (...) TO (...)", "DEFAULT"
  // PostgreSQL cannot detach concurrently from a parent with a DEFAULT
  // partition (a database upgraded with rows of random ids; migration 9).
  bool parent_has_default = false;
};

// Deliveries first: their PENDING check comes before anything is detached.
absl::StatusOr<std::vector<Member>> Members(PgConnection& conn,
                                            const std::string& suffix) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT t, quote_ident(t || '_' || $1), c.oid IS NOT NULL, "
                "i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false), "
                "coalesce(pg_get_expr(c.relpartbound, c.oid), ''), "
                "pt.partdefid <> 0 FROM unnest(ARRAY['deliveries', "
                "'attempts', 'messages']) WITH ORDINALITY AS u(t, n) JOIN "
                "pg_partitioned_table pt ON pt.partrelid = to_regclass(t) "
                "LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(t "
                "|| '_' || $1)) LEFT JOIN pg_inherits i ON i.inhrelid = "
                "c.oid ORDER BY n",
                {suffix}));
  std::vector<Member> members(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    members[i].parent = std::string(r.Get(i, 0));
    members[i].name = std::string(r.Get(i, 1));
    members[i].exists = r.GetBool(i, 2);
    members[i].attached = r.GetBool(i, 3);
    members[i].detaching = r.GetBool(i, 4);
    members[i].bound = std::string(r.Get(i, 5));
    members[i].parent_has_default = r.GetBool(i, 6);
  }
  return members;
}

absl::StatusOr<bool> HoldsPending(PgConnection& conn, const Member& m) {
  if (!m.exists) return false;
  RIO_ASSIGN_OR_RETURN(PgResult r, conn.Exec(absl::StrCat(
                                       "SELECT EXISTS (SELECT 1 FROM ", m.name,
                                       " WHERE status = 'PENDING')")));
  return r.GetBool(0, 0);
}

// Detaches `m` from its parent without blocking the parent's readers and
// writers (CONCURRENTLY) where PostgreSQL allows it, or finishes a detach
// left half-done.
absl::Status Detach(PgConnection& conn, const Member& m) {
  if (!m.attached) return absl::OkStatus();
  const char* how = m.detaching            ? " FINALIZE"
                    : m.parent_has_default ? ""
                                           : " CONCURRENTLY";
  return conn
      .Exec(absl::StrCat("ALTER TABLE ", m.parent, " DETACH PARTITION ", m.name,
                         how))
      .status();
}

}  // namespace

absl::StatusOr<DropResult> DropPartition(PgConnection& conn,
                                         const std::string& suffix,
                                         absl::Duration wait) {
  RIO_ASSIGN_OR_RETURN(std::vector<Member> members, Members(conn, suffix));
  Member& deliveries = members[0];
  if (deliveries.attached && !deliveries.detaching) {
    RIO_ASSIGN_OR_RETURN(bool pending, HoldsPending(conn, deliveries));
    if (pending) return DropResult::kHeld;
  }
  // Waiting for the transactions that still use a partition is bounded.
  RIO_ASSIGN_OR_RETURN(PgResult timeout, conn.Exec("SHOW statement_timeout"));
  const std::string previous(timeout.Get(0, 0));
  RIO_RETURN_IF_ERROR(
      conn.Exec(absl::StrCat(
                    "SET statement_timeout = ",
                    std::max<int64_t>(1, absl::ToInt64Milliseconds(wait))))
          .status());
  absl::Cleanup restore = [&conn, &previous] {
    if (conn.ok()) {
      (void)conn.Exec("SELECT set_config('statement_timeout', $1, false)",
                      {previous});
    }
  };
  absl::Status detached = Detach(conn, deliveries);
  if (absl::IsDeadlineExceeded(detached)) return DropResult::kBusy;
  RIO_RETURN_IF_ERROR(detached);
  // A delivery re-queued between the check and the detach: the range goes
  // back as it was, and is kept.
  RIO_ASSIGN_OR_RETURN(bool pending, HoldsPending(conn, deliveries));
  if (pending) {
    std::string bound = deliveries.bound;
    if (bound.empty()) {
      RIO_ASSIGN_OR_RETURN(
          PgResult range,
          conn.Exec("SELECT 'FOR VALUES FROM (' || coalesce(quote_literal("
                    "rio_uuid_at(lower_time)), 'MINVALUE') || ') TO (' || "
                    "quote_literal(rio_uuid_at(upper_time)) || ')' FROM "
                    "rio_history_partitions WHERE suffix = $1",
                    {suffix}));
      if (range.rows() != 1) {
        return absl::InternalError(
            absl::StrCat("partition ", suffix,
                         " holds a pending delivery, is detached "
                         "and has no bounds to attach it again with"));
      }
      bound = std::string(range.Get(0, 0));
    }
    RIO_RETURN_IF_ERROR(conn.Exec(absl::StrCat("ALTER TABLE deliveries ATTACH "
                                               "PARTITION ",
                                               deliveries.name, " ", bound))
                            .status());
    return DropResult::kHeld;
  }
  for (size_t i = 1; i < members.size(); ++i) {
    absl::Status status = Detach(conn, members[i]);
    if (absl::IsDeadlineExceeded(status)) return DropResult::kBusy;
    RIO_RETURN_IF_ERROR(status);
  }
  // Detached, the tables are no one's: dropping them locks nothing else.
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(
        conn.Exec(absl::StrCat("DROP TABLE IF EXISTS ", members[0].name, ", ",
                               members[1].name, ", ", members[2].name))
            .status());
    return conn
        .Exec("DELETE FROM rio_history_partitions WHERE suffix = $1", {suffix})
        .status();
  }));
  return DropResult::kDropped;
}

}  // namespace rio::store
