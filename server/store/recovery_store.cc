#include "server/store/recovery_store.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

#define RIO_MICROS(column) "(extract(epoch FROM " column ") * 1000000)::bigint"

// Batches per second of a running recovery: its rate is spread over them.
constexpr int kBatchesPerSecond = 5;

// The columns RowToRecovery reads, from `recoveries r JOIN projects p`.
constexpr const char* kRecoveryColumns =
    "r.id, p.slug, coalesce(r.handler_id::text, ''), coalesce(r.event, ''), "
    // Absent `since`: NULL.
    RIO_MICROS("r.since") ", " RIO_MICROS("r.until") ", r.rate_per_second, "
    "r.state, r.matched, r.requeued, " RIO_MICROS("r.create_time") ", "
    RIO_MICROS("r.finish_time") ", "
    // How the deliveries it re-queued stand now.
    "(SELECT count(*) FROM deliveries d WHERE d.recovery_id = r.id AND "
    "d.status = 'SUCCEEDED'), (SELECT count(*) FROM deliveries d WHERE "
    "d.recovery_id = r.id AND d.status IN ('FAILED', 'CANCELLED')), (SELECT "
    "count(*) FROM deliveries d WHERE d.recovery_id = r.id AND d.status = "
    "'PENDING') FROM recoveries r JOIN projects p ON p.id = r.project_id ";

google::protobuf::Timestamp ToTimestamp(int64_t micros) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(micros);
}

v1::Recovery RowToRecovery(const PgResult& r, int row) {
  v1::Recovery out;
  out.set_id(std::string(r.Get(row, 0)));
  out.set_project(std::string(r.Get(row, 1)));
  out.set_handler_id(std::string(r.Get(row, 2)));
  out.set_event(std::string(r.Get(row, 3)));
  if (!r.IsNull(row, 4)) *out.mutable_since() = ToTimestamp(r.GetInt64(row, 4));
  *out.mutable_until() = ToTimestamp(r.GetInt64(row, 5));
  out.set_rate_per_second(static_cast<int32_t>(r.GetInt64(row, 6)));
  v1::Recovery::State state = v1::Recovery::STATE_UNSPECIFIED;
  v1::Recovery::State_Parse(std::string(r.Get(row, 7)), &state);
  out.set_state(state);
  out.set_matched(r.GetInt64(row, 8));
  out.set_requeued(r.GetInt64(row, 9));
  *out.mutable_create_time() = ToTimestamp(r.GetInt64(row, 10));
  if (!r.IsNull(row, 11)) {
    *out.mutable_finish_time() = ToTimestamp(r.GetInt64(row, 11));
  }
  out.set_succeeded(r.GetInt64(row, 12));
  out.set_failed(r.GetInt64(row, 13));
  out.set_pending(r.GetInt64(row, 14));
  return out;
}

absl::Status RecoveryNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("recovery \"", id, "\" not found"));
}

PgParam OrNull(const std::string& value) {
  return value.empty() ? PgParam() : PgParam(value);
}

PgParam MicrosOrNull(const std::optional<absl::Time>& t) {
  return t ? PgParam(absl::StrCat(absl::ToUnixMicros(*t))) : PgParam();
}

// The FAILED and CANCELLED deliveries of enabled handlers matching
// $1 project, $2 handler (or NULL), $3 event (or NULL), created in
// [$4 (or NULL), $5) (epoch micros), after the cursor ($6 time, $7 id; or
// NULL), oldest first: at most $8 per handler (LIMIT added by the caller).
constexpr const char* kRecoverable =
    "FROM handlers h CROSS JOIN LATERAL ("
    "  SELECT d.id, d.create_time FROM deliveries d"
    "  WHERE d.handler_id = h.id AND d.status <> 'SUCCEEDED'"
    "    AND d.status IN ('FAILED', 'CANCELLED')"
    "    AND d.create_time < to_timestamp($5::bigint / 1e6)"
    "    AND ($4::bigint IS NULL OR"
    "         d.create_time >= to_timestamp($4::bigint / 1e6))"
    "    AND ($6::timestamptz IS NULL OR d.create_time > $6 OR"
    "         (d.create_time = $6 AND d.id > $7::uuid))"
    "    AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM messages m"
    "         WHERE m.id = d.message_id AND m.event = $3))"
    "  ORDER BY d.create_time, d.id LIMIT $8) x "
    "WHERE h.project_id = $1 AND h.enabled AND"
    "  ($2::uuid IS NULL OR h.id = $2) ";

std::vector<PgParam> RecoverableParams(const RecoveryFilter& f,
                                       const PgParam& cursor_time,
                                       const PgParam& cursor_id,
                                       const PgParam& limit) {
  return {absl::StrCat(f.project_id),
          OrNull(f.handler_id),
          OrNull(f.event),
          MicrosOrNull(f.since),
          absl::StrCat(absl::ToUnixMicros(f.until)),
          cursor_time,
          cursor_id,
          limit};
}

}  // namespace

absl::Status Redeliver(PgConnection& conn, const std::string& id,
                       absl::Duration lease_timeout) {
  return conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(
            "SELECT h.enabled, h.disabled_reason, d.status = 'PENDING' AND "
            "EXISTS (SELECT 1 FROM rio_instances i WHERE i.id = d.lease_owner "
            "AND i.heartbeat_time > now() - make_interval(secs => $2)), "
            "h.id FROM deliveries d JOIN handlers h ON h.id = d.handler_id "
            "WHERE d.id = $1 FOR UPDATE OF d",
            {id, absl::StrCat(absl::ToDoubleSeconds(lease_timeout))}));
    if (r.rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("delivery \"", id, "\" not found"));
    }
    if (!r.GetBool(0, 0)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "handler \"", r.Get(0, 3), "\" is disabled (", r.Get(0, 1),
          "); enable it with UpdateHandler before re-triggering its "
          "deliveries"));
    }
    if (r.GetBool(0, 2)) {
      return absl::AbortedError(absl::StrCat(
          "delivery \"", id,
          "\" is being attempted right now; try again once that attempt "
          "has finished"));
    }
    RIO_RETURN_IF_ERROR(
        conn.Exec("UPDATE deliveries SET status = 'PENDING', "
                  "next_attempt_time = now(), manual = true, lease_owner = "
                  "NULL, update_time = now() WHERE id = $1",
                  {id})
            .status());
    return conn.Exec("NOTIFY rio_due").status();
  });
}

absl::StatusOr<int64_t> CountRecoverable(PgConnection& conn,
                                         const RecoveryFilter& filter) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(absl::StrCat("SELECT count(*) ", kRecoverable),
                RecoverableParams(filter, PgParam(), PgParam(), PgParam())));
  return r.GetInt64(0, 0);
}

absl::StatusOr<v1::Recovery> CreateRecovery(PgConnection& conn,
                                            const RecoveryFilter& filter,
                                            int rate_per_second) {
  v1::Recovery recovery;
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    // REPEATABLE READ would not help across the later batches; the count
    // is what matched when the job was created.
    RIO_ASSIGN_OR_RETURN(int64_t matched, CountRecoverable(conn, filter));
    RIO_ASSIGN_OR_RETURN(
        PgResult id,
        conn.Exec(
            "INSERT INTO recoveries (id, project_id, handler_id, event, "
            "since, until, rate_per_second, matched) VALUES "
            "(gen_random_uuid(), $1, $2, $3, to_timestamp($4::bigint / 1e6), "
            "to_timestamp($5::bigint / 1e6), $6, $7) RETURNING id",
            {absl::StrCat(filter.project_id), OrNull(filter.handler_id),
             OrNull(filter.event), MicrosOrNull(filter.since),
             absl::StrCat(absl::ToUnixMicros(filter.until)),
             absl::StrCat(rate_per_second), absl::StrCat(matched)}));
    RIO_ASSIGN_OR_RETURN(
        PgResult r,
        conn.Exec(absl::StrCat("SELECT ", kRecoveryColumns, "WHERE r.id = $1"),
                  {std::string(id.Get(0, 0))}));
    recovery = RowToRecovery(r, 0);
    return absl::OkStatus();
  }));
  return recovery;
}

absl::StatusOr<v1::Recovery> GetRecovery(PgConnection& conn,
                                         const std::string& id) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(absl::StrCat("SELECT ", kRecoveryColumns, "WHERE r.id = $1"),
                {id}));
  if (r.rows() == 0) return RecoveryNotFound(id);
  return RowToRecovery(r, 0);
}

absl::StatusOr<std::vector<v1::Recovery>> ListRecoveries(PgConnection& conn,
                                                         int64_t project_id) {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(absl::StrCat("SELECT ", kRecoveryColumns,
                             "WHERE r.project_id = $1 ORDER BY r.create_time "
                             "DESC, r.id DESC LIMIT 1000"),
                {absl::StrCat(project_id)}));
  std::vector<v1::Recovery> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(RowToRecovery(r, i));
  return out;
}

absl::StatusOr<v1::Recovery> CancelRecovery(PgConnection& conn,
                                            const std::string& id) {
  RIO_ASSIGN_OR_RETURN(
      PgResult cancelled,
      conn.Exec("UPDATE recoveries SET state = 'CANCELLED', finish_time = "
                "now() WHERE id = $1 AND state = 'RUNNING'",
                {id}));
  RIO_ASSIGN_OR_RETURN(v1::Recovery recovery, GetRecovery(conn, id));
  if (cancelled.affected() == 0 && recovery.state() == v1::Recovery::DONE) {
    return absl::FailedPreconditionError(
        absl::StrCat("recovery \"", id,
                     "\" is already DONE: every delivery it matched "
                     "was re-queued"));
  }
  return recovery;
}

absl::StatusOr<absl::Time> RunRecoveryBatch(PgConnection& conn) {
  RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(
        PgResult job,
        conn.Exec("SELECT id, project_id, coalesce(handler_id::text, ''), "
                  "coalesce(event, ''), " RIO_MICROS("since") ", " RIO_MICROS(
                      "until") ", rate_per_second, cursor_time, cursor_id "
                               "FROM recoveries WHERE state = 'RUNNING' AND "
                               "next_batch_time <= now() ORDER BY "
                               "next_batch_time LIMIT 1 FOR UPDATE SKIP "
                               "LOCKED"));
    if (job.rows() == 0) return absl::OkStatus();
    const std::string id(job.Get(0, 0));
    RecoveryFilter filter;
    filter.project_id = job.GetInt64(0, 1);
    filter.handler_id = std::string(job.Get(0, 2));
    filter.event = std::string(job.Get(0, 3));
    if (!job.IsNull(0, 4)) filter.since = job.GetMicros(0, 4);
    filter.until = job.GetMicros(0, 5);
    const int64_t rate = std::max<int64_t>(1, job.GetInt64(0, 6));
    const int64_t batch = std::max<int64_t>(
        1, static_cast<int64_t>(
               std::ceil(static_cast<double>(rate) / kBatchesPerSecond)));
    PgParam cursor_time, cursor_id;
    if (!job.IsNull(0, 7)) {
      cursor_time = std::string(job.Get(0, 7));
      cursor_id = std::string(job.Get(0, 8));
    }
    std::vector<PgParam> params =
        RecoverableParams(filter, cursor_time, cursor_id, absl::StrCat(batch));
    params.push_back(id);
    params.push_back(absl::StrCat(static_cast<double>(batch) / rate));
    RIO_ASSIGN_OR_RETURN(
        PgResult done,
        conn.Exec(
            absl::StrCat(
                "WITH picked AS (SELECT x.id, x.create_time ", kRecoverable,
                "ORDER BY x.create_time, x.id LIMIT $8), "
                "requeued AS (UPDATE deliveries d SET status = 'PENDING', "
                "next_attempt_time = now(), manual = true, recovery_id = $9, "
                "lease_owner = NULL, update_time = now() FROM picked WHERE "
                "d.id = picked.id AND d.status IN ('FAILED', 'CANCELLED') "
                "RETURNING d.id), "
                "last AS (SELECT create_time, id FROM picked ORDER BY "
                "create_time DESC, id DESC LIMIT 1), "
                "n AS (SELECT count(*) AS picked, (SELECT count(*) FROM "
                "requeued) AS requeued FROM picked) "
                "UPDATE recoveries r SET requeued = r.requeued + n.requeued, "
                "cursor_time = coalesce((SELECT create_time FROM last), "
                "r.cursor_time), cursor_id = coalesce((SELECT id FROM last), "
                "r.cursor_id), next_batch_time = now() + make_interval(secs "
                "=> $10), state = CASE WHEN n.picked < $8 THEN 'DONE' ELSE "
                "r.state END, finish_time = CASE WHEN n.picked < $8 THEN now() "
                "END FROM n WHERE r.id = $9 RETURNING n.requeued"),
            params));
    if (done.rows() == 1 && done.GetInt64(0, 0) > 0) {
      RIO_RETURN_IF_ERROR(conn.Exec("NOTIFY rio_due").status());
    }
    return absl::OkStatus();
  }));
  RIO_ASSIGN_OR_RETURN(
      PgResult next,
      conn.Exec("SELECT " RIO_MICROS(
          "min(next_batch_time)") " FROM "
                                  "recoveries WHERE state = 'RUNNING'"));
  if (next.IsNull(0, 0)) return absl::InfiniteFuture();
  return next.GetMicros(0, 0);
}

}  // namespace rio::store
