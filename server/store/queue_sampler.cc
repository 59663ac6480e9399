#include "server/store/queue_sampler.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {

QueueSampler::QueueSampler(std::string database_url, absl::Duration interval,
                           util::MetricsRegistry& registry)
    : url_(std::move(database_url)),
      interval_(interval),
      pending_(registry.AddGaugeFamily(
          "rio_pending_deliveries",
          "PENDING deliveries in the database: due (their next attempt time "
          "has come; waiting for room) and scheduled (retries waiting for "
          "their time, and deliveries leased to an instance).",
          {"state"})),
      due_(pending_->Get({"due"})),
      scheduled_(pending_->Get({"scheduled"})),
      oldest_due_age_(registry.AddGauge(
          "rio_oldest_due_delivery_age_seconds",
          "How long the oldest due PENDING delivery has been due, in seconds; "
          "0 when none is due.")),
      sample_time_(registry.AddGauge(
          "rio_queue_sample_timestamp_seconds",
          "Unix time of the last successful sample of the delivery queue "
          "(rio_pending_deliveries, rio_oldest_due_delivery_age_seconds); 0 "
          "before the first.")) {}

QueueSampler::~QueueSampler() { Stop(); }

void QueueSampler::Start() { thread_ = std::thread(&QueueSampler::Loop, this); }

void QueueSampler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status QueueSampler::SampleOnce(PgConnection& conn) {
  // Both counts and the minimum come from the partial index deliveries_due
  // (next_attempt_time WHERE status = 'PENDING'), in one snapshot.
  RIO_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT count(*) FILTER (WHERE next_attempt_time <= now()), "
                "count(*) FILTER (WHERE next_attempt_time > now()), "
                "coalesce(extract(epoch FROM now() - min(next_attempt_time) "
                "FILTER (WHERE next_attempt_time <= now())), 0), "
                "extract(epoch FROM now()) "
                "FROM deliveries WHERE status = 'PENDING'"));
  double age = 0, now = 0;
  if (r.rows() != 1 || !absl::SimpleAtod(r.Get(0, 2), &age) ||
      !absl::SimpleAtod(r.Get(0, 3), &now)) {
    return absl::InternalError("unexpected queue sample");
  }
  due_->Set(static_cast<double>(r.GetInt64(0, 0)));
  scheduled_->Set(static_cast<double>(r.GetInt64(0, 1)));
  oldest_due_age_->Set(age);
  sample_time_->Set(now);
  return absl::OkStatus();
}

void QueueSampler::Loop() {
  pthread_setname_np(pthread_self(), "rio-queue-stats");
  std::unique_ptr<PgConnection> conn;
  for (;;) {
    // A new connection rather than Reconnect(): the session settings must
    // be made again.
    if (conn != nullptr && !conn->ok()) conn.reset();
    if (conn == nullptr) {
      auto connected = PgConnection::Connect(url_);
      // A sample slower than the interval is not worth waiting for; the
      // next one starts afresh.
      if (connected.ok() &&
          (*connected)
              ->Exec(absl::StrCat(
                  "SET statement_timeout = ",
                  std::max<int64_t>(1, absl::ToInt64Milliseconds(interval_))))
              .ok()) {
        conn = std::move(*connected);
      }
    }
    if (conn != nullptr) (void)SampleOnce(*conn);

    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_);
    if (stopping_) return;
  }
}

}  // namespace rio::store
