#include "server/dispatch/outcome_writer.h"

#include <pthread.h>

#include <cstdio>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/store/stats_store.h"
#include "server/util/status_macros.h"
#include "server/util/utf8.h"

namespace rio::dispatch {
namespace {

constexpr size_t kMaxBatch = 2000;
// How long an outcome may wait for others before its batch is written.
constexpr absl::Duration kLinger = absl::Milliseconds(10);

}  // namespace

OutcomeWriter::OutcomeWriter(std::string database_url,
                             std::function<void(absl::Time)> on_retry_scheduled,
                             HealthPolicy health, OnWritten on_written)
    : url_(std::move(database_url)),
      on_retry_scheduled_(std::move(on_retry_scheduled)),
      health_(health),
      on_written_(std::move(on_written)) {}

OutcomeWriter::~OutcomeWriter() { Stop(absl::ZeroDuration()); }

void OutcomeWriter::Start() {
  thread_ = std::thread(&OutcomeWriter::Loop, this);
}

void OutcomeWriter::Record(AttemptOutcome outcome) {
  absl::MutexLock lock(&mu_);
  unwritten_.insert(outcome.delivery_id);
  queue_.push_back(std::move(outcome));
}

bool OutcomeWriter::Holds(const std::string& delivery_id) const {
  absl::MutexLock lock(&mu_);
  return unwritten_.contains(delivery_id);
}

size_t OutcomeWriter::Backlog() const {
  absl::MutexLock lock(&mu_);
  return unwritten_.size();
}

void OutcomeWriter::Stop(absl::Duration deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = absl::Now() + deadline;
  }
  if (thread_.joinable()) thread_.join();
}

void OutcomeWriter::Loop() {
  pthread_setname_np(pthread_self(), "rio-outcomes");
  std::unique_ptr<store::PgConnection> conn;
  std::vector<AttemptOutcome> batch;
  absl::Duration backoff = absl::Milliseconds(50);
  for (;;) {
    bool stopping;
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      if (batch.empty()) {
        mu_.AwaitWithTimeout(
            absl::Condition(
                +[](OutcomeWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
                  return w->stopping_ || !w->queue_.empty();
                },
                this),
            absl::Seconds(1));
        if (!queue_.empty() && !stopping_) {
          // A commit per outcome would cost PostgreSQL a transaction per
          // call at moderate rates: let the first outcome wait a little for
          // others to share its transaction.
          mu_.AwaitWithTimeout(
              absl::Condition(
                  +[](OutcomeWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
                    return w->stopping_ || w->queue_.size() >= kMaxBatch;
                  },
                  this),
              kLinger);
        }
        size_t n = std::min(queue_.size(), kMaxBatch);
        batch.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.begin() + n));
        queue_.erase(queue_.begin(), queue_.begin() + n);
      }
      stopping = stopping_;
      deadline = stop_deadline_;
      if (stopping && batch.empty() && queue_.empty()) return;
    }
    if (batch.empty()) continue;
    absl::Status status = absl::UnavailableError("database unavailable");
    if (conn == nullptr || !conn->ok()) {
      auto connected = store::PgConnection::Connect(url_);
      // Outcomes are acknowledged to no one: if a crash loses the last
      // commits, those deliveries are simply sent again, so these commits
      // need not wait for the WAL flush.
      //
      // Every statement below finds its batch's rows by key. Statistics
      // taken while a table was small or few deliveries were pending would
      // let the planner scan and hash whole tables instead, a cost that grows
      // with the table and is paid by every batch; without hash and merge
      // joins or sequential scans, key lookups are the cheapest plan left.
      if (connected.ok() && (*connected)
                                ->ExecScript("SET synchronous_commit = off; "
                                             "SET enable_hashjoin = off; "
                                             "SET enable_mergejoin = off; "
                                             "SET enable_seqscan = off")
                                .ok()) {
        conn = std::move(*connected);
      }
    }
    absl::Time earliest = absl::InfiniteFuture();
    for (const AttemptOutcome& o : batch) {
      if (o.decision.verdict == Verdict::kRetry) {
        earliest = std::min(earliest, o.decision.next_attempt_time);
      }
    }
    if (conn != nullptr && conn->ok()) status = Write(*conn, batch);
    if (!status.ok() && !absl::IsUnavailable(status)) {
      // The database refused a row: find it, so that it cannot hold up the
      // others or be retried forever.
      batch = WriteOneByOne(*conn, std::move(batch));
      status = batch.empty() ? absl::OkStatus()
                             : absl::UnavailableError("database unavailable");
    }
    if (status.ok()) {
      // Not held any more before anyone hears of it: a claim that finds
      // these deliveries now must take them.
      Forget(batch);
      if (earliest != absl::InfiniteFuture() && on_retry_scheduled_) {
        on_retry_scheduled_(earliest);
      }
      if (on_written_) on_written_(batch);
      batch.clear();
      backoff = absl::Milliseconds(50);
      continue;
    }
    std::fprintf(stderr, "rio-server: cannot record %zu outcomes: %s\n",
                 batch.size(), std::string(status.message()).c_str());
    if (stopping && absl::Now() >= deadline) return;  // leases expire instead
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

std::vector<AttemptOutcome> OutcomeWriter::WriteOneByOne(
    store::PgConnection& conn, std::vector<AttemptOutcome> batch) {
  std::vector<AttemptOutcome> kept;
  for (AttemptOutcome& o : batch) {
    std::vector<AttemptOutcome> one;
    one.push_back(std::move(o));
    absl::Status status = Write(conn, one);
    if (!status.ok() && !absl::IsUnavailable(status)) {
      std::fprintf(stderr,
                   "rio-server: the database refused the outcome of delivery "
                   "%s (%s); recording it without the receiver's reply\n",
                   one.front().delivery_id.c_str(),
                   std::string(status.message()).c_str());
      const std::string original = one.front().delivery_id;
      one.front() = Quarantined(std::move(one.front()), status);
      status = Write(conn, one);
      if (!status.ok() && !absl::IsUnavailable(status)) {
        // Nothing of it can be written: its lease lapses and it is sent
        // again, as after a crash.
        std::fprintf(stderr,
                     "rio-server: dropped the outcome of delivery %s: %s\n",
                     original.c_str(), std::string(status.message()).c_str());
        status = absl::OkStatus();
      }
    }
    if (absl::IsUnavailable(status)) {
      kept.push_back(std::move(one.front()));
      continue;
    }
    Forget(one);  // written, or dropped
    if (on_written_) on_written_(one);
  }
  return kept;
}

AttemptOutcome Quarantined(AttemptOutcome o, const absl::Status& refusal) {
  o.request_headers.clear();
  o.response_headers.clear();
  o.response_body.clear();
  // The delivery moves on as its policy decided; only the attempt's record
  // says what happened to it.
  o.decision.error_class = ErrorClass::kInternalError;
  o.error_message =
      absl::StrCat("the attempt could not be recorded as made (",
                   refusal.message(), "); the receiver's reply was not kept");
  util::MakeStorableText(&o.error_message);
  return o;
}

void OutcomeWriter::Forget(const std::vector<AttemptOutcome>& batch) {
  absl::MutexLock lock(&mu_);
  for (const AttemptOutcome& o : batch) unwritten_.erase(o.delivery_id);
}

absl::Status OutcomeWriter::Write(store::PgConnection& conn,
                                  const std::vector<AttemptOutcome>& batch) {
  store::PgArray a_delivery, a_number, a_start, a_duration, a_dns, a_connect,
      a_tls, a_first, a_total, a_status, a_req, a_resp_headers, a_body, a_class,
      a_message, a_manual;
  store::PgArray d_id, d_status, d_attempts, d_next, d_code, d_class;
  store::PgArray disable_id, disable_reason;
  store::AttemptTally tally;
  bool any_disable = false;
  for (const AttemptOutcome& o : batch) {
    std::string error_class(ErrorClassName(o.decision.error_class));
    if (o.attempted) {
      tally.Add(o.handler_id, o.start_time, o.duration_us, o.status_code > 0,
                o.decision.error_class != ErrorClass::kNone);
      a_delivery.Add(o.delivery_id);
      a_number.Add(int64_t{o.attempt});
      a_start.Add(absl::ToUnixMicros(o.start_time));
      a_duration.Add(o.duration_us);
      a_dns.Add(o.dns_us);
      a_connect.Add(o.connect_us);
      a_tls.Add(o.tls_us);
      a_first.Add(o.first_byte_us);
      a_total.Add(o.total_us);
      a_status.Add(int64_t{o.status_code});
      a_req.Add(o.request_headers);
      a_resp_headers.Add(o.response_headers);
      a_body.Add(absl::StrCat("\\x", absl::BytesToHexString(o.response_body)));
      a_class.Add(error_class);
      a_message.Add(o.error_message.empty() ? o.decision.reason
                                            : o.error_message);
      a_manual.Add(o.manual ? "t" : "f");
    }
    d_id.Add(o.delivery_id);
    d_status.Add(v1::Delivery::Status_Name(StatusAfter(o)));
    d_attempts.Add(int64_t{o.attempted ? o.attempt : o.attempt - 1});
    // Only a retry has a next attempt; a finished delivery keeps its time.
    // Kept within what a timestamp column holds whatever the policy says.
    d_next.Add(absl::ToUnixMicros(
        o.decision.verdict == Verdict::kRetry
            ? std::min(o.decision.next_attempt_time,
                       o.start_time + kMaxRetryDelay + absl::Hours(24))
            : o.start_time));
    if (o.attempted) {
      d_code.Add(int64_t{o.status_code});
      d_class.Add(error_class);
    } else {
      d_code.AddNull();
      d_class.AddNull();
    }
    if (o.decision.verdict == Verdict::kFailedAndDisable) {
      any_disable = true;
      disable_id.Add(o.handler_id);
      disable_reason.Add(o.decision.reason);
    }
  }
  return conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(
        conn.ExecPrepared(
                "INSERT INTO attempts (delivery_id, number, start_time, "
                "duration_us, dns_us, connect_us, tls_us, first_byte_us, "
                "total_us, status_code, request_headers, response_headers, "
                "response_body, error_class, error_message, manual) "
                "SELECT d, n, to_timestamp(s / 1e6), du, dn, co, tl, fb, tt, "
                "sc, rq, rh, rb, ec, em, ma FROM unnest($1::uuid[], $2::int[], "
                "$3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], "
                "$7::bigint[], $8::bigint[], $9::bigint[], $10::int[], "
                "$11::text[], $12::text[], $13::bytea[], $14::text[], "
                "$15::text[], $16::bool[]) AS u(d, n, s, du, dn, co, tl, fb, "
                "tt, sc, rq, rh, rb, ec, em, ma) "
                // The delivery may have gone with its handler meanwhile.
                "WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = u.d) "
                // A crash can make an attempt number happen twice.
                "ON CONFLICT (delivery_id, number) DO NOTHING",
                {std::move(a_delivery).Finish(), std::move(a_number).Finish(),
                 std::move(a_start).Finish(), std::move(a_duration).Finish(),
                 std::move(a_dns).Finish(), std::move(a_connect).Finish(),
                 std::move(a_tls).Finish(), std::move(a_first).Finish(),
                 std::move(a_total).Finish(), std::move(a_status).Finish(),
                 std::move(a_req).Finish(), std::move(a_resp_headers).Finish(),
                 std::move(a_body).Finish(), std::move(a_class).Finish(),
                 std::move(a_message).Finish(), std::move(a_manual).Finish()})
            .status());
    // Were the status compared with a constant, the planner could prove the
    // partial index deliveries_due usable and, with statistics taken when
    // few deliveries were pending, read every pending delivery for each row
    // of the batch. Compared with a sub-select, it cannot: the rows are
    // looked up by key. The statement counts the deliveries it moves out of
    // PENDING (store/stats_store.h).
    static const std::string* const kUpdateDeliveries =
        new std::string(absl::StrCat(
            "WITH up AS (UPDATE deliveries d SET status = u.st, attempts = "
            "greatest(d.attempts, u.at), next_attempt_time = "
            "to_timestamp(u.nx / 1e6), lease_owner = NULL, manual = false, "
            "last_status_code = coalesce(u.sc, d.last_status_code), "
            "last_error_class = coalesce(u.ec, d.last_error_class), "
            "update_time = now() FROM unnest($1::uuid[], $2::text[], "
            "$3::int[], $4::bigint[], $5::int[], $6::text[]) AS u(id, st, at, "
            "nx, sc, ec) WHERE d.id = u.id AND d.status = (SELECT 'PENDING') "
            "RETURNING d.handler_id, d.create_time, d.status) SELECT ",
            store::CountDeliveriesSql("up", /*left_pending=*/true)));
    RIO_RETURN_IF_ERROR(
        conn.ExecPrepared(
                *kUpdateDeliveries,
                {std::move(d_id).Finish(), std::move(d_status).Finish(),
                 std::move(d_attempts).Finish(), std::move(d_next).Finish(),
                 std::move(d_code).Finish(), std::move(d_class).Finish()})
            .status());
    // After the delivery counters: every transaction locks counter rows in
    // that order (migration 8).
    RIO_RETURN_IF_ERROR(tally.Write(conn));
    RIO_RETURN_IF_ERROR(UpdateHealth(conn, batch));
    if (!any_disable) return absl::OkStatus();
    // Only when needed: the statement's trigger makes every instance reload
    // its catalog.
    return conn
        .Exec(
            "UPDATE handlers h SET enabled = false, disabled_reason = "
            "u.reason, update_time = now() FROM unnest($1::uuid[], "
            "$2::text[]) AS u(id, reason) WHERE h.id = u.id AND h.enabled",
            {std::move(disable_id).Finish(),
             std::move(disable_reason).Finish()})
        .status();
  });
}

absl::Status OutcomeWriter::UpdateHealth(
    store::PgConnection& conn, const std::vector<AttemptOutcome>& batch) {
  // Per handler, in the order of the batch: the failures after its last
  // success, the start of the first of them, and that last success.
  struct Tally {
    int64_t failures = 0;
    absl::Time failing_since = absl::InfinitePast();
    absl::Time last_success = absl::InfinitePast();
  };
  absl::flat_hash_map<absl::string_view, Tally> tallies;
  bool any_failure = false;
  for (const AttemptOutcome& o : batch) {
    if (!o.attempted) continue;
    Tally& t = tallies[o.handler_id];
    if (o.decision.verdict == Verdict::kSucceeded) {
      t = Tally{0, absl::InfinitePast(), o.start_time};
    } else {
      if (t.failures++ == 0) t.failing_since = o.start_time;
      any_failure = true;
    }
  }
  if (tallies.empty()) return absl::OkStatus();
  store::PgArray ids, failures, since, success;
  for (const auto& [id, t] : tallies) {
    ids.Add(id);
    failures.Add(t.failures);
    if (t.failures > 0) {
      since.Add(absl::ToUnixMicros(t.failing_since));
    } else {
      since.AddNull();
    }
    if (t.last_success != absl::InfinitePast()) {
      success.Add(absl::ToUnixMicros(t.last_success));
    } else {
      success.AddNull();
    }
  }
  // A batch with a success for the handler restarts its count; one without
  // adds to it. Rows that would not change are left alone.
  RIO_RETURN_IF_ERROR(
      conn.ExecPrepared(
              "INSERT INTO handler_health AS h (handler_id, "
              "consecutive_failures, failing_since, last_success_time) "
              "SELECT u.id, u.n, to_timestamp(u.f / 1e6), to_timestamp(u.s / "
              "1e6) FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], "
              "$4::bigint[]) AS u(id, n, f, s) WHERE EXISTS (SELECT 1 FROM "
              "handlers WHERE id = u.id) ORDER BY u.id "
              "ON CONFLICT (handler_id) DO UPDATE SET consecutive_failures = "
              "CASE WHEN excluded.last_success_time IS NULL THEN "
              "h.consecutive_failures + excluded.consecutive_failures ELSE "
              "excluded.consecutive_failures END, failing_since = CASE WHEN "
              "excluded.last_success_time IS NULL THEN coalesce("
              "h.failing_since, excluded.failing_since) ELSE "
              "excluded.failing_since END, last_success_time = coalesce("
              "excluded.last_success_time, h.last_success_time) WHERE "
              "excluded.consecutive_failures > 0 OR h.consecutive_failures > 0 "
              "OR h.last_success_time IS NULL",
              {std::move(ids).Finish(), std::move(failures).Finish(),
               std::move(since).Finish(), std::move(success).Finish()})
          .status());
  if (!any_failure || health_.failures <= 0) return absl::OkStatus();
  store::PgArray failing;
  for (const auto& [id, t] : tallies) {
    if (t.failures > 0) failing.Add(id);
  }
  RIO_ASSIGN_OR_RETURN(
      store::PgResult give_up,
      conn.Exec("SELECT h.handler_id, h.consecutive_failures, "
                "to_char(h.failing_since AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM handler_health h "
                "JOIN handlers ON handlers.id = h.handler_id AND "
                "handlers.enabled WHERE h.handler_id = ANY($1::uuid[]) AND "
                "h.consecutive_failures >= $2 AND h.failing_since <= now() - "
                "make_interval(secs => $3)",
                {std::move(failing).Finish(), absl::StrCat(health_.failures),
                 absl::StrCat(absl::ToDoubleSeconds(health_.span))}));
  if (give_up.rows() == 0) return absl::OkStatus();
  store::PgArray disable_id, disable_reason;
  for (int i = 0; i < give_up.rows(); ++i) {
    disable_id.Add(give_up.Get(i, 0));
    disable_reason.Add(absl::StrCat(
        give_up.Get(i, 1), " consecutive failed attempts since ",
        give_up.Get(i, 2), " (--disable_after_failures=", health_.failures,
        ", --disable_after=", absl::FormatDuration(health_.span), ")"));
  }
  return conn
      .Exec(
          "UPDATE handlers h SET enabled = false, disabled_reason = u.reason, "
          "update_time = now() FROM unnest($1::uuid[], $2::text[]) AS u(id, "
          "reason) WHERE h.id = u.id AND h.enabled",
          {std::move(disable_id).Finish(), std::move(disable_reason).Finish()})
      .status();
}

}  // namespace rio::dispatch
