#include "server/store/emit_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/stats_store.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// Two common table expressions: k takes the idempotency keys that are free
// (a key taken, by an earlier message or one before it in the same arrays,
// is skipped), m inserts the messages without a key or whose key k took.
// The message columns are array parameters $1..$6.
constexpr char kInsertMessages[] =
    "k AS (INSERT INTO idempotency_keys (project_id, key, message_id) SELECT "
    "u.p, u.key, u.id FROM unnest($1::uuid[], $2::bigint[], $5::text[]) AS "
    "u(id, p, key) WHERE u.key IS NOT NULL ON CONFLICT DO NOTHING RETURNING "
    "message_id), m AS (INSERT INTO messages (id, project_id, event, "
    "payload, idempotency_key, sender) SELECT * FROM unnest($1::uuid[], "
    "$2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(id, "
    "p, e, pl, key, s) WHERE u.key IS NULL OR u.id IN (SELECT message_id "
    "FROM k) RETURNING id)";

// Inserts the deliveries whose ids, message ids and handler ids are array
// parameters $first..$first+2; $first+3 is the lease's owner, $first+4 its
// length in seconds and $first+5 the states (DeliveryRows).
std::string InsertDeliveriesSql(int first) {
  auto p = [first](int i) { return absl::StrCat("$", first + i); };
  return absl::StrCat(
      "INSERT INTO deliveries (id, message_id, handler_id, lease_owner, "
      "next_attempt_time, status) SELECT u.d, u.m, u.h, CASE WHEN u.s = "
      "'leased' AND h.enabled THEN ",
      p(3),
      "::uuid END, CASE WHEN u.s = 'leased' AND h.enabled THEN now() + "
      "make_interval(secs => ",
      p(4),
      ") ELSE now() END, CASE WHEN u.s = 'cancelled' OR NOT h.enabled "
      "THEN 'CANCELLED' ELSE 'PENDING' END FROM unnest(",
      p(0), "::uuid[], ", p(1), "::uuid[], ", p(2), "::uuid[], ", p(5),
      "::text[]) AS u(d, m, h, s) JOIN handlers h ON h.id = u.h");
}

absl::flat_hash_set<std::string> FirstColumn(const PgResult& r) {
  absl::flat_hash_set<std::string> ids;
  ids.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) ids.insert(std::string(r.Get(i, 0)));
  return ids;
}

}  // namespace

void MessageRows::Add(absl::string_view id, int64_t project_id,
                      absl::string_view event, absl::string_view payload,
                      absl::string_view idempotency_key,
                      absl::string_view sender) {
  ids_.Add(id);
  project_ids_.Add(project_id);
  events_.Add(event);
  payloads_.Add(payload);
  if (idempotency_key.empty()) {
    keys_.AddNull();
  } else {
    keys_.Add(idempotency_key);
  }
  senders_.Add(sender);
}

std::vector<PgParam> MessageRows::Finish() && {
  return {std::move(ids_).Finish(),    std::move(project_ids_).Finish(),
          std::move(events_).Finish(), std::move(payloads_).Finish(),
          std::move(keys_).Finish(),   std::move(senders_).Finish()};
}

void DeliveryRows::Add(absl::string_view id, absl::string_view message_id,
                       absl::string_view handler_id, NewDelivery state) {
  ids_.Add(id);
  message_ids_.Add(message_id);
  handler_ids_.Add(handler_id);
  switch (state) {
    case NewDelivery::kLeased:
      states_.Add("leased");
      break;
    case NewDelivery::kQueued:
      states_.Add("queued");
      break;
    case NewDelivery::kCancelled:
      states_.Add("cancelled");
      break;
  }
  ++size_;
}

std::vector<PgParam> DeliveryRows::Finish(const Lease& lease) && {
  // In the order of InsertDeliveriesSql's parameters.
  return {std::move(ids_).Finish(),
          std::move(message_ids_).Finish(),
          std::move(handler_ids_).Finish(),
          lease.owner,
          absl::StrCat(absl::ToDoubleSeconds(lease.duration)),
          std::move(states_).Finish()};
}

absl::Status SendEmit(PgConnection& conn, MessageRows messages,
                      DeliveryRows deliveries, const Lease& lease) {
  // Built once: it is sent for every group.
  static const std::string* const kEmit = new std::string(absl::StrCat(
      "WITH ", kInsertMessages, ", d AS (", InsertDeliveriesSql(7),
      " WHERE u.m IN (SELECT id FROM m) RETURNING id, status, handler_id, "
      "create_time) SELECT 'm', id FROM m UNION ALL SELECT 'd', id FROM d "
      "WHERE status = 'PENDING' UNION ALL SELECT 'c', NULL WHERE ",
      CountDeliveriesSql("d", /*left_pending=*/false), " < 0"));
  std::vector<PgParam> params = std::move(messages).Finish();
  for (PgParam& param : std::move(deliveries).Finish(lease)) {
    params.push_back(std::move(param));
  }
  return conn.SendPrepared(*kEmit, params);
}

absl::StatusOr<EmitRows> TakeEmitRows(PgConnection& conn) {
  RIO_ASSIGN_OR_RETURN(PgResult written, conn.TakeResult());
  EmitRows rows;
  for (int i = 0; i < written.rows(); ++i) {
    (written.Get(i, 0) == "m" ? rows.messages : rows.pending)
        .insert(std::string(written.Get(i, 1)));
  }
  return rows;
}

absl::StatusOr<std::vector<KeyHolder>> FindKeyHolders(
    PgConnection& conn, const std::vector<int64_t>& project_ids,
    const std::vector<std::string>& keys, absl::Duration window) {
  PgArray projects, key_array;
  for (int64_t id : project_ids) projects.Add(id);
  for (const std::string& key : keys) key_array.Add(key);
  // A key whose message is gone (retention) is as good as expired.
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT k.i, ik.message_id, coalesce(m.create_time > now() - "
                "make_interval(secs => $3), false), (SELECT count(*) FROM "
                "deliveries d WHERE d.message_id = ik.message_id AND "
                "(d.status <> 'CANCELLED' OR d.attempts > 0)) FROM "
                "unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS k(p, "
                "key, i) JOIN idempotency_keys ik ON ik.project_id = k.p AND "
                "ik.key = k.key LEFT JOIN messages m ON m.id = ik.message_id",
                {std::move(projects).Finish(), std::move(key_array).Finish(),
                 absl::StrCat(absl::ToDoubleSeconds(window))}));
  std::vector<KeyHolder> holders;
  holders.reserve(r.rows());
  for (int row = 0; row < r.rows(); ++row) {
    KeyHolder& h = holders.emplace_back();
    h.index = static_cast<size_t>(r.GetInt64(row, 0) - 1);
    h.message_id = std::string(r.Get(row, 1));
    h.within_window = r.GetBool(row, 2);
    h.deliveries = r.GetInt64(row, 3);
  }
  return holders;
}

absl::Status FreeIdempotencyKeys(PgConnection& conn,
                                 const std::vector<int64_t>& project_ids,
                                 const std::vector<std::string>& keys,
                                 const std::vector<std::string>& message_ids) {
  PgArray projects, key_array, ids;
  for (int64_t id : project_ids) projects.Add(id);
  for (const std::string& key : keys) key_array.Add(key);
  for (const std::string& id : message_ids) ids.Add(id);
  return conn
      .Exec(
          "DELETE FROM idempotency_keys k USING unnest($1::bigint[], "
          "$2::text[], $3::uuid[]) AS u(p, key, m) WHERE k.project_id = u.p "
          "AND k.key = u.key AND k.message_id = u.m",
          {std::move(projects).Finish(), std::move(key_array).Finish(),
           std::move(ids).Finish()})
      .status();
}

absl::StatusOr<absl::flat_hash_set<std::string>> InsertMessages(
    PgConnection& conn, MessageRows messages) {
  static const std::string* const kInsert = new std::string(
      absl::StrCat("WITH ", kInsertMessages, " SELECT id FROM m"));
  RIO_ASSIGN_OR_RETURN(PgResult r,
                       conn.Exec(*kInsert, std::move(messages).Finish()));
  return FirstColumn(r);
}

absl::StatusOr<absl::flat_hash_set<std::string>> InsertDeliveries(
    PgConnection& conn, DeliveryRows deliveries, const Lease& lease) {
  static const std::string* const kInsert = new std::string(absl::StrCat(
      "WITH d AS (", InsertDeliveriesSql(1),
      " RETURNING id, status, handler_id, create_time) SELECT id FROM d WHERE "
      "status = 'PENDING' UNION ALL SELECT NULL WHERE ",
      CountDeliveriesSql("d", /*left_pending=*/false), " < 0"));
  RIO_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec(*kInsert, std::move(deliveries).Finish(lease)));
  return FirstColumn(r);
}

}  // namespace rio::store
