#include "server/store/outcome_store.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// The attempts as array parameters $1..$16.
constexpr char kInsertAttempts[] =
    "INSERT INTO attempts (delivery_id, number, start_time, duration_us, "
    "dns_us, connect_us, tls_us, first_byte_us, total_us, status_code, "
    "request_headers, response_headers, response_body, error_class, "
    "error_message, manual) "
    "SELECT d, n, to_timestamp(s / 1e6), du, dn, co, tl, fb, tt, sc, rq, rh, "
    "rb, ec, em, ma FROM unnest($1::uuid[], $2::int[], $3::bigint[], "
    "$4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], "
    "$9::bigint[], $10::int[], $11::text[], $12::text[], $13::bytea[], "
    "$14::text[], $15::text[], $16::bool[]) AS u(d, n, s, du, dn, co, tl, "
    "fb, tt, sc, rq, rh, rb, ec, em, ma) "
    // The delivery may have gone with its handler meanwhile. (Each probe
    // reads the one partition its id falls in: the others are pruned when
    // the subquery runs.)
    "WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = u.d) "
    // A crash can make an attempt number happen twice.
    "ON CONFLICT (delivery_id, number) DO NOTHING";

// The deliveries' new states as array parameters $1..$6; counts those it
// moves out of PENDING.
//
// Were the status compared with a constant, the planner could prove the
// partial index deliveries_due usable and, with statistics taken when few
// deliveries were pending, read every pending delivery for each row of the
// batch. Compared with a sub-select, it cannot: the rows are looked up by
// key.
const std::string& UpdateDeliveriesSql() {
  static const std::string* const sql = new std::string(absl::StrCat(
      "WITH up AS (UPDATE deliveries d SET status = u.st, attempts = "
      "greatest(d.attempts, u.at), next_attempt_time = to_timestamp(u.nx / "
      "1e6), lease_owner = NULL, manual = false, last_status_code = "
      "coalesce(u.sc, d.last_status_code), last_error_class = coalesce(u.ec, "
      "d.last_error_class), update_time = now() FROM unnest($1::uuid[], "
      "$2::text[], $3::int[], $4::bigint[], $5::int[], $6::text[]) AS u(id, "
      "st, at, nx, sc, ec) WHERE d.id = u.id AND d.status = (SELECT "
      "'PENDING') RETURNING d.handler_id, d.create_time, d.status) SELECT ",
      CountDeliveriesSql("up", /*left_pending=*/true)));
  return *sql;
}

}  // namespace

void OutcomeRows::AddAttempt(const AttemptRecord& a) {
  tally_.Add(a.handler_id, a.start, a.duration_us, a.status_code > 0,
             !a.error_class.empty());
  a_delivery_.Add(a.delivery_id);
  a_number_.Add(int64_t{a.number});
  a_start_.Add(absl::ToUnixMicros(a.start));
  a_duration_.Add(a.duration_us);
  a_dns_.Add(a.dns_us);
  a_connect_.Add(a.connect_us);
  a_tls_.Add(a.tls_us);
  a_first_byte_.Add(a.first_byte_us);
  a_total_.Add(a.total_us);
  a_status_.Add(int64_t{a.status_code});
  a_request_headers_.Add(a.request_headers);
  a_response_headers_.Add(a.response_headers);
  a_body_.Add(absl::StrCat("\\x", absl::BytesToHexString(a.response_body)));
  a_class_.Add(a.error_class);
  a_message_.Add(a.error_message);
  a_manual_.Add(a.manual ? "t" : "f");
}

void OutcomeRows::AddDelivery(const DeliveryChange& d) {
  d_id_.Add(d.delivery_id);
  d_status_.Add(d.status);
  d_attempts_.Add(int64_t{d.attempts});
  d_next_.Add(absl::ToUnixMicros(d.next_attempt_time));
  if (d.status_code.has_value()) {
    d_code_.Add(int64_t{*d.status_code});
    d_class_.Add(d.error_class);
  } else {
    d_code_.AddNull();
    d_class_.AddNull();
  }
}

absl::Status OutcomeRows::Write(PgConnection& conn) && {
  RIO_RETURN_IF_ERROR(
      conn.ExecPrepared(
              kInsertAttempts,
              {std::move(a_delivery_).Finish(), std::move(a_number_).Finish(),
               std::move(a_start_).Finish(), std::move(a_duration_).Finish(),
               std::move(a_dns_).Finish(), std::move(a_connect_).Finish(),
               std::move(a_tls_).Finish(), std::move(a_first_byte_).Finish(),
               std::move(a_total_).Finish(), std::move(a_status_).Finish(),
               std::move(a_request_headers_).Finish(),
               std::move(a_response_headers_).Finish(),
               std::move(a_body_).Finish(), std::move(a_class_).Finish(),
               std::move(a_message_).Finish(), std::move(a_manual_).Finish()})
          .status());
  RIO_RETURN_IF_ERROR(
      conn.ExecPrepared(
              UpdateDeliveriesSql(),
              {std::move(d_id_).Finish(), std::move(d_status_).Finish(),
               std::move(d_attempts_).Finish(), std::move(d_next_).Finish(),
               std::move(d_code_).Finish(), std::move(d_class_).Finish()})
          .status());
  return tally_.Write(conn);
}

absl::Status AddToHealth(PgConnection& conn,
                         const std::vector<HealthChange>& changes) {
  if (changes.empty()) return absl::OkStatus();
  PgArray ids, failures, since, success;
  for (const HealthChange& c : changes) {
    ids.Add(c.handler_id);
    failures.Add(c.failures);
    if (c.failing_since.has_value()) {
      since.Add(absl::ToUnixMicros(*c.failing_since));
    } else {
      since.AddNull();
    }
    if (c.last_success.has_value()) {
      success.Add(absl::ToUnixMicros(*c.last_success));
    } else {
      success.AddNull();
    }
  }
  return conn
      .ExecPrepared(
          "INSERT INTO handler_health AS h (handler_id, consecutive_failures, "
          "failing_since, last_success_time) "
          "SELECT u.id, u.n, to_timestamp(u.f / 1e6), to_timestamp(u.s / "
          "1e6) FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], "
          "$4::bigint[]) AS u(id, n, f, s) WHERE EXISTS (SELECT 1 FROM "
          "handlers WHERE id = u.id) ORDER BY u.id "
          "ON CONFLICT (handler_id) DO UPDATE SET consecutive_failures = CASE "
          "WHEN excluded.last_success_time IS NULL THEN "
          "h.consecutive_failures + excluded.consecutive_failures ELSE "
          "excluded.consecutive_failures END, failing_since = CASE WHEN "
          "excluded.last_success_time IS NULL THEN coalesce(h.failing_since, "
          "excluded.failing_since) ELSE excluded.failing_since END, "
          "last_success_time = coalesce(excluded.last_success_time, "
          "h.last_success_time) WHERE excluded.consecutive_failures > 0 OR "
          "h.consecutive_failures > 0 OR h.last_success_time IS NULL",
          {std::move(ids).Finish(), std::move(failures).Finish(),
           std::move(since).Finish(), std::move(success).Finish()})
      .status();
}

absl::StatusOr<std::vector<FailingHandler>> FailingHandlers(
    PgConnection& conn, const std::vector<std::string>& handler_ids,
    int64_t failures, absl::Duration span) {
  PgArray ids;
  for (const std::string& id : handler_ids) ids.Add(id);
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT h.handler_id, h.consecutive_failures, "
                "to_char(h.failing_since AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM handler_health h "
                "JOIN handlers ON handlers.id = h.handler_id AND "
                "handlers.enabled WHERE h.handler_id = ANY($1::uuid[]) AND "
                "h.consecutive_failures >= $2 AND h.failing_since <= now() - "
                "make_interval(secs => $3)",
                {std::move(ids).Finish(), absl::StrCat(failures),
                 absl::StrCat(absl::ToDoubleSeconds(span))}));
  std::vector<FailingHandler> failing;
  failing.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    failing.push_back(
        {std::string(r.Get(i, 0)), r.GetInt64(i, 1), std::string(r.Get(i, 2))});
  }
  return failing;
}

absl::Status DisableHandlers(PgConnection& conn,
                             const std::vector<std::string>& handler_ids,
                             const std::vector<std::string>& reasons) {
  if (handler_ids.empty()) return absl::OkStatus();
  PgArray ids, why;
  for (const std::string& id : handler_ids) ids.Add(id);
  for (const std::string& reason : reasons) why.Add(reason);
  return conn
      .Exec(
          "UPDATE handlers h SET enabled = false, disabled_reason = u.reason, "
          "update_time = now() FROM unnest($1::uuid[], $2::text[]) AS u(id, "
          "reason) WHERE h.id = u.id AND h.enabled",
          {std::move(ids).Finish(), std::move(why).Finish()})
      .status();
}

}  // namespace rio::store
