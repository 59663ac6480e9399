#include "server/store/lease_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

PgParam IdArray(const std::vector<std::string>& ids) {
  PgArray array;
  for (const std::string& id : ids) array.Add(id);
  return std::move(array).Finish();
}

}  // namespace

absl::Status Leases::LockInstanceId(PgConnection& conn) const {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  for (;;) {
    RIO_ASSIGN_OR_RETURN(
        PgResult locked,
        conn.Exec("SELECT pg_try_advisory_lock(hashtext('rio-instance:' || "
                  "$1))",
                  {instance_id_}));
    if (locked.GetBool(0, 0)) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::FailedPreconditionError(absl::StrCat(
          "another rio-server is running with --instance_id=", instance_id_,
          "; each instance needs its own"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

absl::Status Leases::Heartbeat(PgConnection& conn) const {
  return conn
      .Exec(
          "INSERT INTO rio_instances (id) VALUES ($1) ON CONFLICT (id) DO "
          "UPDATE SET heartbeat_time = now()",
          {instance_id_})
      .status();
}

absl::Status Leases::ReclaimEarlierLeases(PgConnection& conn) const {
  return conn
      .Exec(
          "UPDATE deliveries SET next_attempt_time = now(), update_time = "
          "now() WHERE lease_owner = $1 AND status = 'PENDING' AND "
          "next_attempt_time > now()",
          {instance_id_})
      .status();
}

absl::StatusOr<std::vector<ClaimedDelivery>> Leases::Claim(
    PgConnection& conn, int limit,
    const std::vector<std::string>& skip_handlers) const {
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.ExecPrepared(
          "WITH due AS ("
          "  SELECT d.id FROM deliveries d"
          "  WHERE d.status = 'PENDING' AND d.next_attempt_time <= now()"
          "    AND d.handler_id <> ALL($4::uuid[])"
          // Its own leases too: a delivery committed by this instance whose
          // hand-over to the dispatcher was lost (an error after commit)
          // would otherwise wait for as long as the instance lives.
          "    AND (d.lease_owner IS NULL OR d.lease_owner = $1 OR NOT EXISTS ("
          "      SELECT 1 FROM rio_instances i WHERE i.id = d.lease_owner"
          "        AND i.heartbeat_time > now() - make_interval(secs => $2)))"
          "  ORDER BY d.next_attempt_time LIMIT $3"
          "  FOR UPDATE OF d SKIP LOCKED) "
          "UPDATE deliveries d SET lease_owner = $1, update_time = now(), "
          // Not due again while leased: other scans skip it cheaply.
          "next_attempt_time = now() + make_interval(secs => $2) "
          // A project deleted while this delivery was written leaves it
          // behind: claimed all the same, the caller cancels it.
          "FROM due, messages m LEFT JOIN projects p ON p.id = m.project_id "
          "WHERE d.id = due.id AND m.id = d.message_id "
          "RETURNING d.id, d.message_id, d.handler_id, d.attempts, p.slug, "
          "m.event, m.payload, d.manual",
          {instance_id_, absl::StrCat(absl::ToDoubleSeconds(lease_)),
           absl::StrCat(limit), IdArray(skip_handlers)}));
  std::vector<ClaimedDelivery> claimed(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    ClaimedDelivery& c = claimed[i];
    c.delivery_id = std::string(r.Get(i, 0));
    c.message_id = std::string(r.Get(i, 1));
    c.handler_id = std::string(r.Get(i, 2));
    c.attempts = static_cast<int>(r.GetInt64(i, 3));
    c.project = std::string(r.Get(i, 4));
    c.event = std::string(r.Get(i, 5));
    c.payload = std::make_shared<const std::string>(r.Get(i, 6));
    c.manual = r.GetBool(i, 7);
  }
  return claimed;
}

absl::Status Leases::Release(
    PgConnection& conn, const std::vector<std::string>& delivery_ids) const {
  return UpdateLeased(conn, delivery_ids,
                      "lease_owner = NULL, next_attempt_time = now(), "
                      "update_time = now()");
}

absl::Status Leases::DueSoon(
    PgConnection& conn, const std::vector<std::string>& delivery_ids) const {
  return UpdateLeased(conn, delivery_ids,
                      "next_attempt_time = now() + interval '1 second'");
}

absl::Status Leases::UpdateLeased(PgConnection& conn,
                                  const std::vector<std::string>& delivery_ids,
                                  absl::string_view set) const {
  if (delivery_ids.empty()) return absl::OkStatus();
  return conn
      .Exec(absl::StrCat("UPDATE deliveries SET ", set,
                         " WHERE id = ANY($1::uuid[]) AND lease_owner = $2 "
                         "AND status = 'PENDING'"),
            {IdArray(delivery_ids), instance_id_})
      .status();
}

absl::Status Leases::ReleaseAll(PgConnection& conn) const {
  return conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(
        conn.Exec("UPDATE deliveries SET lease_owner = NULL, "
                  "next_attempt_time = least(next_attempt_time, now()), "
                  "update_time = now() WHERE lease_owner = $1 AND status = "
                  "'PENDING'",
                  {instance_id_})
            .status());
    RIO_RETURN_IF_ERROR(
        conn.Exec("DELETE FROM rio_instances WHERE id = $1", {instance_id_})
            .status());
    return conn.Exec("NOTIFY rio_due").status();
  });
}

}  // namespace rio::store
