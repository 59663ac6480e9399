#include "server/store/retention.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/store/stats_store.h"
#include "server/util/status_macros.h"

namespace rio::store {
Retention::Retention(Options options, std::string database_url,
                     util::MetricsRegistry& registry)
    : options_(std::move(options)), url_(std::move(database_url)) {
  util::CounterFamily* deleted = registry.AddCounterFamily(
      "rio_retention_deleted_total",
      "Rows deleted by retention (--retention), by table.", {"table"});
  deleted_messages_ = deleted->Get({"messages"});
  deleted_deliveries_ = deleted->Get({"deliveries"});
  deleted_attempts_ = deleted->Get({"attempts"});
  deleted_recoveries_ = deleted->Get({"recoveries"});
  deleted_counters_ = deleted->Get({"counters"});
  util::CounterFamily* runs = registry.AddCounterFamily(
      "rio_retention_runs_total",
      "Retention passes: completed, skipped (another instance was deleting) "
      "or failed (a database error; tried again later).",
      {"result"});
  runs_completed_ = runs->Get({"completed"});
  runs_skipped_ = runs->Get({"skipped"});
  runs_failed_ = runs->Get({"failed"});
}

Retention::~Retention() { Stop(); }

void Retention::Start() { thread_ = std::thread(&Retention::Loop, this); }

void Retention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Retention::stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool Retention::Pause(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
  return !stopping_;
}

absl::StatusOr<Retention::Counts> Retention::RunOnce(PgConnection& conn) {
  Counts counts;
  RIO_ASSIGN_OR_RETURN(PgResult locked,
                       conn.Exec(absl::StrCat("SELECT pg_try_advisory_lock(",
                                              kRetentionLockKey, ")")));
  if (!locked.GetBool(0, 0)) {
    counts.skipped = true;
    return counts;
  }
  // A lost connection releases the lock by itself.
  absl::Cleanup unlock = [&conn] {
    if (conn.ok()) {
      (void)conn.Exec(
          absl::StrCat("SELECT pg_advisory_unlock(", kRetentionLockKey, ")"));
    }
  };
  // One cutoff for the whole pass, from the database's clock. Text keeps
  // the microseconds.
  RIO_ASSIGN_OR_RETURN(
      PgResult cutoff_row,
      conn.Exec("SELECT (now() - make_interval(secs => $1))::text",
                {absl::StrCat(absl::ToDoubleSeconds(options_.retention))}));
  const std::string cutoff(cutoff_row.Get(0, 0));
  RIO_ASSIGN_OR_RETURN(PgResult projects,
                       conn.Exec("SELECT id FROM projects ORDER BY id"));
  for (int i = 0; i < projects.rows(); ++i) {
    if (stopping()) break;
    const std::string project(projects.Get(i, 0));
    RIO_RETURN_IF_ERROR(DeleteMessages(conn, project, cutoff, counts));
    RIO_RETURN_IF_ERROR(DeleteRecoveries(conn, project, cutoff, counts));
  }
  if (stopping()) return counts;
  // The per-handler counters keep their own time (they outlive the history).
  RIO_ASSIGN_OR_RETURN(counts.counters, PruneStats(conn));
  deleted_counters_->Increment(counts.counters);
  return counts;
}

absl::Status Retention::DeleteMessages(PgConnection& conn,
                                       const std::string& project,
                                       const std::string& cutoff,
                                       Counts& counts) {
  // Messages are walked oldest first, by (create_time, id) so that the many
  // messages of one group commit, which share a create_time, are neither
  // skipped nor read twice, and those kept (a delivery still PENDING) are
  // read once per pass.
  std::string from_time = "-infinity";
  std::string from_id = "00000000-0000-0000-0000-000000000000";
  const std::string limit = absl::StrCat(options_.batch_size);
  for (;;) {
    RIO_ASSIGN_OR_RETURN(
        PgResult batch,
        // A correlated probe of deliveries_by_message per message: an
        // EXISTS here may be planned as a hash of every pending delivery,
        // built again for each batch.
        conn.Exec("SELECT m.id, m.create_time::text, coalesce((SELECT true "
                  "FROM deliveries d WHERE d.message_id = m.id AND d.status = "
                  "'PENDING' LIMIT 1), false) FROM messages m WHERE "
                  "m.project_id = $1 AND "
                  "m.create_time < $2::timestamptz AND m.create_time >= "
                  "$3::timestamptz AND (m.create_time, m.id) > "
                  "($3::timestamptz, $4::uuid) ORDER BY m.create_time, m.id "
                  "LIMIT $5",
                  {project, cutoff, from_time, from_id, limit}));
    if (batch.rows() == 0) return absl::OkStatus();
    PgArray ids;
    int deletable = 0;
    for (int i = 0; i < batch.rows(); ++i) {
      if (batch.GetBool(i, 2)) continue;
      ids.Add(batch.Get(i, 0));
      ++deletable;
    }
    if (deletable > 0) {
      const std::string id_array = std::move(ids).Finish();
      int64_t deliveries = 0, attempts = 0, messages = 0;
      RIO_RETURN_IF_ERROR(conn.InTransaction([&]() -> absl::Status {
        // Finished deliveries first: a delivery made PENDING again since
        // the batch was read is re-checked under its row lock and stays,
        // and so does its message below.
        RIO_ASSIGN_OR_RETURN(
            PgResult gone,
            conn.Exec("WITH d AS (DELETE FROM deliveries WHERE message_id = "
                      "ANY($1::uuid[]) AND status <> 'PENDING' RETURNING id), "
                      "a AS (DELETE FROM attempts USING d WHERE "
                      "attempts.delivery_id = d.id RETURNING 1) "
                      "SELECT (SELECT count(*) FROM d), (SELECT count(*) "
                      "FROM a)",
                      {id_array}));
        deliveries = gone.GetInt64(0, 0);
        attempts = gone.GetInt64(0, 1);
        RIO_ASSIGN_OR_RETURN(
            PgResult deleted,
            conn.Exec("DELETE FROM messages m WHERE m.id = ANY($1::uuid[]) "
                      "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE "
                      "d.message_id = m.id)",
                      {id_array}));
        messages = deleted.affected();
        return absl::OkStatus();
      }));
      counts.messages += messages;
      counts.deliveries += deliveries;
      counts.attempts += attempts;
      deleted_messages_->Increment(messages);
      deleted_deliveries_->Increment(deliveries);
      deleted_attempts_->Increment(attempts);
    }
    if (batch.rows() < options_.batch_size) return absl::OkStatus();
    from_id = std::string(batch.Get(batch.rows() - 1, 0));
    from_time = std::string(batch.Get(batch.rows() - 1, 1));
    if (!Pause(options_.pause)) return absl::OkStatus();
  }
}

absl::Status Retention::DeleteRecoveries(PgConnection& conn,
                                         const std::string& project,
                                         const std::string& cutoff,
                                         Counts& counts) {
  // A recovery finishes after it is created, so the index
  // recoveries_by_project (project_id, create_time DESC) narrows the scan.
  for (;;) {
    RIO_ASSIGN_OR_RETURN(
        PgResult deleted,
        conn.Exec("DELETE FROM recoveries WHERE id IN (SELECT id FROM "
                  "recoveries WHERE project_id = $1 AND create_time < "
                  "$2::timestamptz AND state <> 'RUNNING' AND finish_time < "
                  "$2::timestamptz LIMIT $3)",
                  {project, cutoff, absl::StrCat(options_.batch_size)}));
    counts.recoveries += deleted.affected();
    deleted_recoveries_->Increment(deleted.affected());
    if (deleted.affected() < options_.batch_size) return absl::OkStatus();
    if (!Pause(options_.pause)) return absl::OkStatus();
  }
}

void Retention::Loop() {
  pthread_setname_np(pthread_self(), "rio-retention");
  std::unique_ptr<PgConnection> conn;
  absl::Duration wait = std::min(options_.first_delay, options_.interval);
  while (Pause(wait)) {
    wait = options_.interval;
    // A new connection rather than Reconnect(): the session settings must
    // be made again.
    if (conn != nullptr && !conn->ok()) conn.reset();
    if (conn == nullptr) {
      auto connected = PgConnection::Connect(url_);
      // Deletions lost in a crash are simply made again, so commits need
      // not wait for the WAL flush; no statement may hang the pass.
      if (connected.ok() &&
          (*connected)
              ->ExecScript("SET synchronous_commit = off; SET "
                           "statement_timeout = '60s'; SET lock_timeout = "
                           "'5s'")
              .ok()) {
        conn = std::move(*connected);
      }
    }
    if (conn == nullptr) {
      runs_failed_->Increment();
      continue;
    }
    absl::StatusOr<Counts> counts = RunOnce(*conn);
    if (!counts.ok()) {
      runs_failed_->Increment();
      std::fprintf(stderr, "rio-server: retention pass failed: %s\n",
                   std::string(counts.status().message()).c_str());
      continue;
    }
    if (counts->skipped) {
      runs_skipped_->Increment();
      continue;
    }
    runs_completed_->Increment();
    if (counts->messages > 0 || counts->recoveries > 0) {
      std::fprintf(stderr,
                   "rio-server: retention deleted %lld messages (%lld "
                   "deliveries, %lld attempts) and %lld recoveries\n",
                   static_cast<long long>(counts->messages),
                   static_cast<long long>(counts->deliveries),
                   static_cast<long long>(counts->attempts),
                   static_cast<long long>(counts->recoveries));
    }
  }
}

}  // namespace rio::store
