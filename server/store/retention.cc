#include "server/store/retention.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/store/partitions.h"
#include "server/store/stats_store.h"
#include "server/util/status_macros.h"

namespace rio::store {
Retention::Retention(Options options, std::string database_url,
                     util::MetricsRegistry& registry)
    : options_(std::move(options)), url_(std::move(database_url)) {
  util::CounterFamily* partitions = registry.AddCounterFamily(
      "rio_retention_partitions_total",
      "Time ranges of messages, deliveries and attempts "
      "(--partition_interval): created ahead of the clock, dropped past "
      "--retention, or kept for now: held (a delivery in it is still "
      "pending) or busy (its drop waited too long for other transactions).",
      {"result"});
  partitions_created_ = partitions->Get({"created"});
  partitions_dropped_ = partitions->Get({"dropped"});
  partitions_held_ = partitions->Get({"held"});
  partitions_busy_ = partitions->Get({"busy"});
  util::CounterFamily* deleted = registry.AddCounterFamily(
      "rio_retention_deleted_total",
      "Rows deleted by retention (--retention), by table.", {"table"});
  deleted_keys_ = deleted->Get({"idempotency_keys"});
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

absl::StatusOr<int> Retention::CreatePartitionsAhead(PgConnection& conn) {
  RIO_ASSIGN_OR_RETURN(
      int created,
      CreatePartitions(conn, options_.partition_width,
                       2 * options_.partition_width + 2 * options_.interval));
  partitions_created_->Increment(created);
  return created;
}

absl::StatusOr<Retention::Counts> Retention::RunOnce(PgConnection& conn) {
  Counts counts;
  RIO_ASSIGN_OR_RETURN(counts.partitions_created, CreatePartitionsAhead(conn));
  if (options_.retention <= absl::ZeroDuration()) return counts;
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
  RIO_RETURN_IF_ERROR(DropPartitions(conn, cutoff, counts));
  if (stopping()) return counts;
  RIO_RETURN_IF_ERROR(DeleteIdempotencyKeys(conn, counts));
  RIO_ASSIGN_OR_RETURN(PgResult projects,
                       conn.Exec("SELECT id FROM projects ORDER BY id"));
  for (int i = 0; i < projects.rows(); ++i) {
    if (stopping()) return counts;
    RIO_RETURN_IF_ERROR(DeleteRecoveries(conn, std::string(projects.Get(i, 0)),
                                         cutoff, counts));
  }
  if (stopping()) return counts;
  // The per-handler counters keep their own time (they outlive the history).
  RIO_ASSIGN_OR_RETURN(counts.counters, PruneStats(conn));
  deleted_counters_->Increment(counts.counters);
  return counts;
}

absl::Status Retention::DropPartitions(PgConnection& conn,
                                       const std::string& cutoff,
                                       Counts& counts) {
  RIO_ASSIGN_OR_RETURN(std::vector<Partition> expired,
                       ExpiredPartitions(conn, cutoff));
  for (const Partition& partition : expired) {
    if (stopping()) break;
    const absl::Time start = absl::Now();
    RIO_ASSIGN_OR_RETURN(
        DropResult result,
        DropPartition(conn, partition.suffix, options_.drop_wait));
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
    switch (result) {
      case DropResult::kDropped:
        ++counts.partitions_dropped;
        partitions_dropped_->Increment();
        std::fprintf(stderr,
                     "rio-server: retention dropped the messages, "
                     "deliveries and attempts of partition %s (all before "
                     "%s) in %.1f ms\n",
                     partition.suffix.c_str(), partition.upper_time.c_str(),
                     ms);
        break;
      case DropResult::kHeld:
        ++counts.partitions_held;
        partitions_held_->Increment();
        std::fprintf(stderr,
                     "rio-server: retention keeps partition %s: a delivery "
                     "in it is still pending\n",
                     partition.suffix.c_str());
        break;
      case DropResult::kBusy:
        // Its detach is finished first at the next pass (PostgreSQL allows
        // one unfinished detach per table).
        ++counts.partitions_busy;
        partitions_busy_->Increment();
        return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status Retention::DeleteIdempotencyKeys(PgConnection& conn,
                                              Counts& counts) {
  // A key is of no use past the window (a duplicate then is a new message)
  // nor past its message.
  const std::string older_than = absl::StrCat(absl::ToDoubleSeconds(
      std::min(options_.idempotency_window, options_.retention)));
  return DeleteInBatches(
      conn,
      "DELETE FROM idempotency_keys WHERE (project_id, key) IN (SELECT "
      "project_id, key FROM idempotency_keys WHERE create_time < now() - "
      "make_interval(secs => $1) LIMIT $2)",
      {older_than}, *deleted_keys_, counts.idempotency_keys);
}

absl::Status Retention::DeleteRecoveries(PgConnection& conn,
                                         const std::string& project,
                                         const std::string& cutoff,
                                         Counts& counts) {
  // A recovery finishes after it is created, so the index
  // recoveries_by_project (project_id, create_time DESC) narrows the scan.
  return DeleteInBatches(
      conn,
      "DELETE FROM recoveries WHERE id IN (SELECT id FROM recoveries WHERE "
      "project_id = $1 AND create_time < $2::timestamptz AND state <> "
      "'RUNNING' AND finish_time < $2::timestamptz LIMIT $3)",
      {project, cutoff}, *deleted_recoveries_, counts.recoveries);
}

absl::Status Retention::DeleteInBatches(PgConnection& conn,
                                        absl::string_view sql,
                                        std::vector<PgParam> params,
                                        util::Counter& metric,
                                        int64_t& deleted) {
  params.push_back(absl::StrCat(options_.batch_size));
  for (;;) {
    RIO_ASSIGN_OR_RETURN(PgResult r, conn.Exec(sql, params));
    deleted += r.affected();
    metric.Increment(r.affected());
    if (r.affected() < options_.batch_size) return absl::OkStatus();
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
    const bool deleting = options_.retention > absl::ZeroDuration();
    if (!counts.ok()) {
      if (deleting) runs_failed_->Increment();
      std::fprintf(stderr, "rio-server: retention pass failed: %s\n",
                   std::string(counts.status().message()).c_str());
      continue;
    }
    if (!deleting) continue;
    if (counts->skipped) {
      runs_skipped_->Increment();
      continue;
    }
    runs_completed_->Increment();
    if (counts->idempotency_keys > 0 || counts->recoveries > 0) {
      std::fprintf(stderr,
                   "rio-server: retention deleted %lld idempotency keys and "
                   "%lld recoveries\n",
                   static_cast<long long>(counts->idempotency_keys),
                   static_cast<long long>(counts->recoveries));
    }
  }
}

}  // namespace rio::store
