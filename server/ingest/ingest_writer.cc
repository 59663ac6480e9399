#include "server/ingest/ingest_writer.h"

#include <pthread.h>

#include <cstdio>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/util/crypto.h"
#include "server/util/status_macros.h"

namespace rio::ingest {
namespace {

// Where an item sits in a group: submission index, item index.
struct ItemRef {
  size_t submission;
  size_t item;
};

}  // namespace

IngestWriter::IngestWriter(Options options, std::string database_url,
                           Dispatch dispatch)
    : options_(std::move(options)),
      url_(std::move(database_url)),
      dispatch_(std::move(dispatch)) {}

IngestWriter::~IngestWriter() { Stop(); }

absl::Status IngestWriter::Start() {
  RIO_ASSIGN_OR_RETURN(conn_, store::PgConnection::Connect(url_));
  thread_ = std::thread(&IngestWriter::Loop, this);
  return absl::OkStatus();
}

void IngestWriter::Submit(std::vector<EmitItem> items, Done done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(Submission{std::move(items), std::move(done)});
}

void IngestWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void IngestWriter::Loop() {
  pthread_setname_np(pthread_self(), "rio-ingest");
  for (;;) {
    std::vector<Submission> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](IngestWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
            return w->stopping_ || !w->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, and everything is written
      size_t items = 0;
      size_t n = 0;
      while (n < queue_.size() && (n == 0 || items + queue_[n].items.size() <=
                                                 options_.max_group_items)) {
        items += queue_[n].items.size();
        ++n;
      }
      group.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    Commit(std::move(group));
  }
}

void IngestWriter::Commit(std::vector<Submission> group) {
  std::vector<std::vector<EmitResult>> results;
  std::vector<dispatch::DeliveryJob> jobs;
  if (!conn_->ok()) (void)conn_->Reconnect();
  absl::Status status = Write(group, results, jobs);
  if (!status.ok() && group.size() > 1 && !absl::IsUnavailable(status)) {
    // One submission (say, for a handler deleted a moment ago) must not sink
    // the others: write them one by one.
    for (Submission& submission : group) {
      std::vector<Submission> one;
      one.push_back(std::move(submission));
      Commit(std::move(one));
    }
    return;
  }
  if (!status.ok()) {
    for (Submission& submission : group) submission.done(status);
    return;
  }
  std::string log;
  for (size_t s = 0; s < group.size(); ++s) {
    for (size_t i = 0; i < group[s].items.size(); ++i) {
      const EmitItem& item = group[s].items[i];
      const EmitResult& result = results[s][i];
      absl::StrAppend(&log, "EMIT ", result.message_id, " ", item.project, " ",
                      item.event, " handlers=", result.handlers,
                      result.duplicate ? " duplicate" : "", "\n");
    }
  }
  std::fwrite(log.data(), 1, log.size(), stderr);
  if (!jobs.empty()) dispatch_(std::move(jobs));
  for (size_t s = 0; s < group.size(); ++s) {
    group[s].done(std::move(results[s]));
  }
}

absl::Status IngestWriter::Write(const std::vector<Submission>& group,
                                 std::vector<std::vector<EmitResult>>& results,
                                 std::vector<dispatch::DeliveryJob>& jobs) {
  results.assign(group.size(), {});
  jobs.clear();
  std::vector<ItemRef> refs;
  for (size_t s = 0; s < group.size(); ++s) {
    results[s].resize(group[s].items.size());
    for (size_t i = 0; i < group[s].items.size(); ++i) refs.push_back({s, i});
  }
  auto item = [&](const ItemRef& r) -> const EmitItem& {
    return group[r.submission].items[r.item];
  };
  const std::string lease_seconds =
      absl::StrCat(absl::ToDoubleSeconds(options_.lease_timeout));

  // Inserts the messages of `subset`; returns the ids actually inserted
  // (idempotency conflicts are skipped).
  auto insert_messages = [&](const std::vector<ItemRef>& subset)
      -> absl::StatusOr<absl::flat_hash_set<std::string>> {
    store::PgArray ids, projects, events, payloads, keys, senders;
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      ids.Add(it.message_id);
      projects.Add(it.project_id);
      events.Add(it.event);
      payloads.Add(*it.payload);
      if (it.idempotency_key.empty()) {
        keys.AddNull();
      } else {
        keys.Add(it.idempotency_key);
      }
      senders.Add(it.sender);
    }
    RIO_ASSIGN_OR_RETURN(
        store::PgResult inserted,
        conn_->Exec(
            "INSERT INTO messages (id, project_id, event, payload, "
            "idempotency_key, sender) SELECT * FROM unnest($1::uuid[], "
            "$2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) "
            "ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key "
            "IS NOT NULL DO NOTHING RETURNING id",
            {std::move(ids).Finish(), std::move(projects).Finish(),
             std::move(events).Finish(), std::move(payloads).Finish(),
             std::move(keys).Finish(), std::move(senders).Finish()}));
    absl::flat_hash_set<std::string> set;
    for (int i = 0; i < inserted.rows(); ++i) {
      set.insert(std::string(inserted.Get(i, 0)));
    }
    return set;
  };

  return conn_->InTransaction([&]() -> absl::Status {
    RIO_ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> inserted,
                         insert_messages(refs));
    std::vector<ItemRef> conflicted;
    for (const ItemRef& r : refs) {
      if (!inserted.contains(item(r).message_id)) conflicted.push_back(r);
    }
    // Handler counts of this group's new messages, for duplicates of them.
    absl::flat_hash_map<std::string, int> group_counts;
    for (const ItemRef& r : refs) {
      if (inserted.contains(item(r).message_id)) {
        group_counts[item(r).message_id] =
            static_cast<int>(item(r).handlers.size());
      }
    }
    if (!conflicted.empty()) {
      store::PgArray projects, keys;
      for (const ItemRef& r : conflicted) {
        projects.Add(item(r).project_id);
        keys.Add(item(r).idempotency_key);
      }
      RIO_ASSIGN_OR_RETURN(
          store::PgResult earlier,
          conn_->Exec(
              "SELECT k.i, m.id, m.create_time > now() - make_interval(secs "
              "=> $3), (SELECT count(*) FROM deliveries d WHERE d.message_id "
              "= m.id) FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY "
              "AS k(p, key, i) JOIN messages m ON m.project_id = k.p AND "
              "m.idempotency_key = k.key",
              {std::move(projects).Finish(), std::move(keys).Finish(),
               absl::StrCat(
                   absl::ToDoubleSeconds(options_.idempotency_window))}));
      std::vector<ItemRef> expired;
      store::PgArray expired_ids;
      for (int row = 0; row < earlier.rows(); ++row) {
        const ItemRef& r = conflicted[earlier.GetInt64(row, 0) - 1];
        std::string id(earlier.Get(row, 1));
        if (!earlier.GetBool(row, 2)) {
          // The key was used before the window: it is free again.
          expired.push_back(r);
          expired_ids.Add(id);
          continue;
        }
        EmitResult& result = results[r.submission][r.item];
        result.message_id = id;
        result.duplicate = true;
        auto own = group_counts.find(id);
        result.handlers = own != group_counts.end()
                              ? own->second
                              : static_cast<int>(earlier.GetInt64(row, 3));
      }
      if (!expired.empty()) {
        RIO_RETURN_IF_ERROR(
            conn_
                ->Exec("UPDATE messages SET idempotency_key = NULL WHERE id "
                       "= ANY($1::uuid[])",
                       {std::move(expired_ids).Finish()})
                .status());
        RIO_ASSIGN_OR_RETURN(auto again, insert_messages(expired));
        for (const ItemRef& r : expired) {
          if (!again.contains(item(r).message_id)) {
            return absl::AbortedError("idempotency key reused concurrently");
          }
          inserted.insert(item(r).message_id);
        }
      }
    }

    store::PgArray delivery_ids, message_ids, handler_ids;
    for (const ItemRef& r : refs) {
      const EmitItem& it = item(r);
      if (!inserted.contains(it.message_id)) continue;
      EmitResult& result = results[r.submission][r.item];
      result.message_id = it.message_id;
      result.handlers = static_cast<int>(it.handlers.size());
      for (const auto& handler : it.handlers) {
        dispatch::DeliveryJob& job = jobs.emplace_back();
        job.delivery_id = util::RandomUuid();
        job.message_id = it.message_id;
        job.project = it.project;
        job.event = it.event;
        job.payload = it.payload;
        job.handler = handler;
        delivery_ids.Add(job.delivery_id);
        message_ids.Add(it.message_id);
        handler_ids.Add(handler->id);
      }
    }
    if (jobs.empty()) return absl::OkStatus();
    // A handler deleted since the catalog snapshot gets no delivery.
    RIO_ASSIGN_OR_RETURN(
        store::PgResult created,
        conn_->Exec(
            "INSERT INTO deliveries (id, message_id, handler_id, "
            "lease_owner, next_attempt_time) SELECT d, m, h, $4, now() "
            "+ make_interval(secs => $5) FROM unnest($1::uuid[], "
            "$2::uuid[], $3::uuid[]) AS u(d, m, h) WHERE EXISTS "
            "(SELECT 1 FROM handlers WHERE id = u.h) RETURNING id",
            {std::move(delivery_ids).Finish(), std::move(message_ids).Finish(),
             std::move(handler_ids).Finish(), options_.instance_id,
             lease_seconds}));
    if (created.rows() == static_cast<int>(jobs.size()))
      return absl::OkStatus();
    absl::flat_hash_set<std::string> kept;
    for (int i = 0; i < created.rows(); ++i) {
      kept.insert(std::string(created.Get(i, 0)));
    }
    absl::flat_hash_map<std::string, int> lost;  // message id -> deliveries
    std::vector<dispatch::DeliveryJob> remaining;
    for (dispatch::DeliveryJob& job : jobs) {
      if (kept.contains(job.delivery_id)) {
        remaining.push_back(std::move(job));
      } else {
        ++lost[job.message_id];
      }
    }
    jobs = std::move(remaining);
    for (const ItemRef& r : refs) {
      EmitResult& result = results[r.submission][r.item];
      auto it = lost.find(result.message_id);
      if (it != lost.end() && !result.duplicate) result.handlers -= it->second;
    }
    return absl::OkStatus();
  });
}

}  // namespace rio::ingest
