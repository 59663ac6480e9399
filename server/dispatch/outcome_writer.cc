#include "server/dispatch/outcome_writer.h"

#include <pthread.h>

#include <cstdio>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/store/outcome_store.h"
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
  store::OutcomeRows rows;
  std::vector<std::string> disable_ids, disable_reasons;
  for (const AttemptOutcome& o : batch) {
    const absl::string_view error_class =
        ErrorClassName(o.decision.error_class);
    if (o.attempted) {
      store::AttemptRecord a;
      a.delivery_id = o.delivery_id;
      a.handler_id = o.handler_id;
      a.number = o.attempt;
      a.start = o.start_time;
      a.duration_us = o.duration_us;
      a.dns_us = o.dns_us;
      a.connect_us = o.connect_us;
      a.tls_us = o.tls_us;
      a.first_byte_us = o.first_byte_us;
      a.total_us = o.total_us;
      a.status_code = o.status_code;
      a.request_headers = o.request_headers;
      a.response_headers = o.response_headers;
      a.response_body = o.response_body;
      a.error_class = error_class;
      a.error_message =
          o.error_message.empty() ? o.decision.reason : o.error_message;
      a.manual = o.manual;
      rows.AddAttempt(a);
    }
    store::DeliveryChange change;
    change.delivery_id = o.delivery_id;
    change.status = v1::Delivery::Status_Name(StatusAfter(o));
    change.attempts = o.attempted ? o.attempt : o.attempt - 1;
    // Only a retry has a next attempt; a finished delivery keeps its time.
    // Kept within what a timestamp column holds whatever the policy says.
    change.next_attempt_time =
        o.decision.verdict == Verdict::kRetry
            ? std::min(o.decision.next_attempt_time,
                       o.start_time + kMaxRetryDelay + absl::Hours(24))
            : o.start_time;
    if (o.attempted) {
      change.status_code = o.status_code;
      change.error_class = error_class;
    }
    rows.AddDelivery(change);
    if (o.decision.verdict == Verdict::kFailedAndDisable) {
      disable_ids.push_back(o.handler_id);
      disable_reasons.push_back(o.decision.reason);
    }
  }
  return conn.InTransaction([&]() -> absl::Status {
    RIO_RETURN_IF_ERROR(std::move(rows).Write(conn));
    RIO_RETURN_IF_ERROR(UpdateHealth(conn, batch));
    // Only when needed: the statement's trigger makes every instance reload
    // its catalog.
    return store::DisableHandlers(conn, disable_ids, disable_reasons);
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
  std::vector<store::HealthChange> changes;
  changes.reserve(tallies.size());
  std::vector<std::string> failing;
  for (const auto& [id, t] : tallies) {
    store::HealthChange& c = changes.emplace_back();
    c.handler_id = id;
    c.failures = t.failures;
    if (t.failures > 0) {
      c.failing_since = t.failing_since;
      failing.emplace_back(id);
    }
    if (t.last_success != absl::InfinitePast()) c.last_success = t.last_success;
  }
  RIO_RETURN_IF_ERROR(store::AddToHealth(conn, changes));
  if (!any_failure || health_.failures <= 0) return absl::OkStatus();
  RIO_ASSIGN_OR_RETURN(
      std::vector<store::FailingHandler> give_up,
      store::FailingHandlers(conn, failing, health_.failures, health_.span));
  std::vector<std::string> ids, reasons;
  for (const store::FailingHandler& h : give_up) {
    ids.push_back(h.handler_id);
    reasons.push_back(absl::StrCat(
        h.failures, " consecutive failed attempts since ", h.failing_since,
        " (--disable_after_failures=", health_.failures,
        ", --disable_after=", absl::FormatDuration(health_.span), ")"));
  }
  return store::DisableHandlers(conn, ids, reasons);
}

}  // namespace rio::dispatch
