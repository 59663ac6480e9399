#include "server/ingest/ingest_writer.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/util/crypto.h"
#include "server/util/status_macros.h"

namespace rio::ingest {
namespace {

// Seconds; fine below a few milliseconds, where a commit usually is.
std::vector<double> EmitStageBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003,
          0.005,  0.01,    0.025,  0.05,    0.1,   0.25,   0.5,   1};
}

// An emit is answered OK only once its commit is durable, whatever the
// database's postgresql.conf says.
constexpr char kSessionSettings[] = "SET synchronous_commit = on";

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
      dispatch_(std::move(dispatch)),
      wait_((options_.metrics != nullptr ? *options_.metrics : unexported_)
                .AddHistogram("rio_emit_wait_seconds",
                              "Time an emit waited for the ingest writer (busy "
                              "committing the group before) before its own "
                              "group was written.",
                              EmitStageBuckets())),
      commit_((options_.metrics != nullptr ? *options_.metrics : unexported_)
                  .AddHistogram("rio_emit_commit_seconds",
                                "Time to write and commit one group of emits "
                                "(its count is the number of groups).",
                                EmitStageBuckets())) {}

IngestWriter::~IngestWriter() { Stop(); }

absl::Status IngestWriter::Start() {
  for (int i = 0; i < std::max(1, options_.writers); ++i) {
    RIO_ASSIGN_OR_RETURN(auto conn, store::PgConnection::Connect(url_));
    RIO_RETURN_IF_ERROR(conn->ExecScript(kSessionSettings));
    conns_.push_back(std::move(conn));
  }
  for (auto& conn : conns_) {
    threads_.emplace_back(&IngestWriter::Loop, this, conn.get());
  }
  return absl::OkStatus();
}

absl::Status IngestWriter::Submit(std::vector<EmitItem> items, Done done) {
  int64_t bytes = 0;
  for (const EmitItem& item : items) {
    bytes += static_cast<int64_t>(item.payload->size());
  }
  const auto events = static_cast<int64_t>(items.size());
  absl::MutexLock lock(&mu_);
  if (held_events_ > 0 && (held_events_ + events > options_.max_queued_events ||
                           held_bytes_ + bytes > options_.max_queued_bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many emits are waiting to be recorded (", held_events_,
        " events, ", held_bytes_, " payload bytes; the limits are ",
        options_.max_queued_events, " events (--max_ingest_queue_events) and ",
        options_.max_queued_bytes,
        " bytes (--max_ingest_queue_bytes)): retry later"));
  }
  held_events_ += events;
  held_bytes_ += bytes;
  queue_.push_back(
      Submission{std::move(items), std::move(done), absl::Now(), bytes});
  return absl::OkStatus();
}

void IngestWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void IngestWriter::Loop(store::PgConnection* conn) {
  pthread_setname_np(pthread_self(), "rio-ingest");
  Answers owed;
  for (;;) {
    std::vector<Submission> group;
    {
      absl::MutexLock lock(&mu_);
      if (!owed) {
        mu_.Await(absl::Condition(
            +[](IngestWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
              return w->stopping_ || !w->queue_.empty();
            },
            this));
        if (queue_.empty()) return;  // stopping, and everything is written
      }
      size_t items = 0;
      int64_t bytes = 0;
      size_t n = 0;
      while (n < queue_.size() &&
             (n == 0 ||
              (items + queue_[n].items.size() <= options_.max_group_items &&
               bytes + queue_[n].bytes <= options_.max_group_bytes))) {
        items += queue_[n].items.size();
        bytes += queue_[n].bytes;
        ++n;
      }
      group.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    const absl::Time taken = absl::Now();
    int64_t events = 0, bytes = 0;
    for (const Submission& submission : group) {
      wait_->Observe(absl::ToDoubleSeconds(taken - submission.submitted));
      events += static_cast<int64_t>(submission.items.size());
      bytes += submission.bytes;
    }
    if (group.empty()) {
      // Nothing to overlap the answers with.
      std::exchange(owed, nullptr)();
      continue;
    }
    Commit(*conn, std::move(group), owed);
    absl::MutexLock lock(&mu_);
    held_events_ -= events;
    held_bytes_ -= bytes;
  }
}

void IngestWriter::Commit(store::PgConnection& conn,
                          std::vector<Submission> group, Answers& owed) {
  auto pay = [&owed] {
    if (owed) std::exchange(owed, nullptr)();
  };
  std::vector<std::vector<EmitResult>> results;
  std::vector<dispatch::DeliveryJob> jobs;
  if (!conn.ok() && conn.Reconnect().ok()) {
    // A failure here fails the statements below, which say so.
    (void)conn.ExecScript(kSessionSettings);
  }
  // Per submission: an error after the first statement committed (settling
  // idempotency conflicts), which must not undo what was committed.
  std::vector<absl::Status> unsettled(group.size());
  const absl::Time start = absl::Now();
  size_t unleased = 0;
  absl::Status status =
      Write(conn, group, results, jobs, unleased, unsettled, pay);
  pay();  // when the statement could not be sent
  if (status.ok()) commit_->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (!status.ok() && group.size() > 1 && !absl::IsUnavailable(status)) {
    // One submission (say, for a handler deleted a moment ago) must not sink
    // the others: write them one by one.
    for (Submission& submission : group) {
      std::vector<Submission> one;
      one.push_back(std::move(submission));
      Commit(conn, std::move(one), owed);
    }
    return;
  }
  if (!status.ok()) {
    for (Submission& submission : group) submission.done(status);
    return;
  }
  std::string log;
  for (size_t s = 0; s < group.size(); ++s) {
    if (!unsettled[s].ok()) continue;
    for (size_t i = 0; i < group[s].items.size(); ++i) {
      const EmitItem& item = group[s].items[i];
      const EmitResult& result = results[s][i];
      absl::StrAppend(&log, "EMIT ", result.message_id, " ", item.project, " ",
                      item.event, " handlers=", result.handlers,
                      result.duplicate ? " duplicate" : "", "\n");
    }
  }
  std::fwrite(log.data(), 1, log.size(), stderr);
  // Whatever was committed is dispatched, even for a submission that failed
  // afterwards: its deliveries are leased to this instance.
  if (!jobs.empty()) dispatch_(std::move(jobs));
  if (unleased > 0 && options_.queued) options_.queued();
  owed = [group = std::move(group), results = std::move(results),
          unsettled = std::move(unsettled)]() mutable {
    for (size_t s = 0; s < group.size(); ++s) {
      if (unsettled[s].ok()) {
        group[s].done(std::move(results[s]));
      } else {
        group[s].done(unsettled[s]);
      }
    }
  };
}

absl::Status IngestWriter::Write(store::PgConnection& conn,
                                 const std::vector<Submission>& group,
                                 std::vector<std::vector<EmitResult>>& results,
                                 std::vector<dispatch::DeliveryJob>& jobs,
                                 size_t& unleased,
                                 std::vector<absl::Status>& unsettled,
                                 const std::function<void()>& on_sent) {
  results.assign(group.size(), {});
  jobs.clear();
  unleased = 0;
  std::vector<ItemRef> all;
  for (size_t s = 0; s < group.size(); ++s) {
    results[s].resize(group[s].items.size());
    for (size_t i = 0; i < group[s].items.size(); ++i) all.push_back({s, i});
  }
  auto item = [&](const ItemRef& r) -> const EmitItem& {
    return group[r.submission].items[r.item];
  };
  const std::string lease_seconds =
      absl::StrCat(absl::ToDoubleSeconds(options_.lease_timeout));

  // The message columns of `subset`, as array parameters $1..$6.
  auto message_params = [&](const std::vector<ItemRef>& subset) {
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
    return std::vector<store::PgParam>{
        std::move(ids).Finish(),    std::move(projects).Finish(),
        std::move(events).Finish(), std::move(payloads).Finish(),
        std::move(keys).Finish(),   std::move(senders).Finish()};
  };
  constexpr const char* kInsertMessages =
      "INSERT INTO messages (id, project_id, event, payload, idempotency_key, "
      "sender) SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], "
      "$4::text[], $5::text[], $6::text[]) ON CONFLICT (project_id, "
      "idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
      "RETURNING id";

  // Records the results and delivery jobs of the items of `subset` whose
  // messages were inserted; `created` (below) holds the ids of the deliveries
  // recorded PENDING (a handler deleted since the snapshot got none, one
  // disabled since got a CANCELLED one). Those the dispatcher has no room
  // for now are in `queued`: written unleased, not dispatched from here.
  std::vector<dispatch::DeliveryJob> planned;
  absl::flat_hash_set<std::string> queued;
  // Appends the parameters of delivery_insert() (below) for those
  // deliveries to `params`; returns how many deliveries they hold.
  auto plan_deliveries = [&](const std::vector<ItemRef>& subset,
                             const absl::flat_hash_set<std::string>& inserted,
                             std::vector<store::PgParam>& params) {
    planned.clear();
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      if (!inserted.contains(it.message_id)) continue;
      EmitResult& result = results[r.submission][r.item];
      result.message_id = it.message_id;
      result.handlers = static_cast<int>(it.handlers.size());
      for (const auto& handler : it.handlers) {
        dispatch::DeliveryJob& job = planned.emplace_back();
        job.delivery_id = util::TimeOrderedUuid();
        job.message_id = it.message_id;
        job.project = it.project;
        job.event = it.event;
        job.payload = it.payload;
        job.handler = handler;
      }
    }
    const std::vector<bool> leased =
        options_.room ? options_.room(planned)
                      : std::vector<bool>(planned.size(), true);
    store::PgArray delivery_ids, message_ids, handler_ids, states;
    size_t rows = 0;
    auto add = [&](const std::string& id, const std::string& message_id,
                   const std::string& handler_id, const char* state) {
      delivery_ids.Add(id);
      message_ids.Add(message_id);
      handler_ids.Add(handler_id);
      states.Add(state);
      ++rows;
    };
    size_t next = 0;  // planned[] is in the order of the loop below
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      if (!inserted.contains(it.message_id)) continue;
      for (size_t h = 0; h < it.handlers.size(); ++h, ++next) {
        const dispatch::DeliveryJob& job = planned[next];
        if (!leased[next]) queued.insert(job.delivery_id);
        add(job.delivery_id, it.message_id, job.handler->id,
            leased[next] ? "leased" : "queued");
      }
      for (const std::string& handler_id : it.disabled_handler_ids) {
        add(util::TimeOrderedUuid(), it.message_id, handler_id, "cancelled");
      }
    }
    params.push_back(std::move(delivery_ids).Finish());
    params.push_back(std::move(message_ids).Finish());
    params.push_back(std::move(handler_ids).Finish());
    params.push_back(options_.instance_id);
    params.push_back(lease_seconds);
    params.push_back(std::move(states).Finish());
    return rows;
  };
  auto keep_created = [&](const absl::flat_hash_set<std::string>& created) {
    for (dispatch::DeliveryJob& job : planned) {
      if (created.contains(job.delivery_id)) {
        if (queued.contains(job.delivery_id)) {
          ++unleased;
        } else {
          jobs.push_back(std::move(job));
        }
        continue;
      }
      for (const ItemRef& r : all) {
        EmitResult& result = results[r.submission][r.item];
        if (result.message_id == job.message_id && !result.duplicate) {
          --result.handlers;
          break;
        }
      }
    }
    planned.clear();
  };
  // Inserts the deliveries whose ids, message ids, handler ids are array
  // parameters $first..$first+2; $first+3 is this instance's id (the lease),
  // $first+4 the lease in seconds and $first+5 a text array of states:
  // "leased" (to this instance, not due while the lease lasts), "queued"
  // (due now, leased to no one) or "cancelled" (a handler disabled in the
  // emit's catalog snapshot). A delivery to a handler disabled there or in
  // the database is recorded CANCELLED and leased to no one; one to a
  // handler deleted meanwhile is not recorded.
  auto delivery_insert = [](int first) {
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
  };

  // The common case in one statement (its own transaction, one round trip):
  // every message and its deliveries. A message whose idempotency key is
  // taken is skipped here and settled below.
  {
    absl::flat_hash_set<std::string> all_ids;
    for (const ItemRef& r : all) all_ids.insert(item(r).message_id);
    std::vector<store::PgParam> params = message_params(all);
    plan_deliveries(all, all_ids, params);
    // Built once: it is sent for every group.
    static const std::string* const kEmitStatement =
        new std::string(absl::StrCat(
            "WITH m AS (", kInsertMessages, "), d AS (", delivery_insert(7),
            " WHERE u.m IN (SELECT id FROM m) RETURNING "
            "id, status) SELECT 'm', id FROM m UNION ALL "
            "SELECT 'd', id FROM d WHERE status = "
            "'PENDING'"));
    RIO_RETURN_IF_ERROR(conn.SendPrepared(*kEmitStatement, params));
    on_sent();
    RIO_ASSIGN_OR_RETURN(store::PgResult written, conn.TakeResult());
    absl::flat_hash_set<std::string> inserted, created;
    for (int i = 0; i < written.rows(); ++i) {
      (written.Get(i, 0) == "m" ? inserted : created)
          .insert(std::string(written.Get(i, 1)));
    }
    std::vector<dispatch::DeliveryJob> all_planned = std::move(planned);
    planned.clear();
    for (dispatch::DeliveryJob& job : all_planned) {
      if (inserted.contains(job.message_id)) planned.push_back(std::move(job));
    }
    for (const ItemRef& r : all) {
      if (!inserted.contains(item(r).message_id)) {
        results[r.submission][r.item] = EmitResult();
      }
    }
    keep_created(created);
    std::vector<ItemRef> conflicted;
    for (const ItemRef& r : all) {
      if (!inserted.contains(item(r).message_id)) conflicted.push_back(r);
    }
    if (conflicted.empty()) return absl::OkStatus();
    all.swap(conflicted);  // settled below
  }

  // Idempotency keys already taken: duplicates of messages within the
  // window, or keys whose first use is older than the window (free again).
  const std::vector<ItemRef>& refs = all;
  std::vector<dispatch::DeliveryJob> committed = std::move(jobs);
  jobs.clear();
  absl::Status settled = conn.InTransaction([&]() -> absl::Status {
    store::PgArray projects, keys;
    for (const ItemRef& r : refs) {
      projects.Add(item(r).project_id);
      keys.Add(item(r).idempotency_key);
    }
    RIO_ASSIGN_OR_RETURN(
        store::PgResult earlier,
        conn.Exec(
            "SELECT k.i, m.id, m.create_time > now() - make_interval(secs "
            "=> $3), (SELECT count(*) FROM deliveries d WHERE d.message_id "
            "= m.id AND (d.status <> 'CANCELLED' OR d.attempts > 0)) FROM "
            "unnest($1::bigint[], $2::text[]) WITH ORDINALITY "
            "AS k(p, key, i) JOIN messages m ON m.project_id = k.p AND "
            "m.idempotency_key = k.key",
            {std::move(projects).Finish(), std::move(keys).Finish(),
             absl::StrCat(
                 absl::ToDoubleSeconds(options_.idempotency_window))}));
    std::vector<ItemRef> expired;
    store::PgArray expired_ids;
    for (int row = 0; row < earlier.rows(); ++row) {
      const ItemRef& r = refs[earlier.GetInt64(row, 0) - 1];
      std::string id(earlier.Get(row, 1));
      if (!earlier.GetBool(row, 2)) {
        expired.push_back(r);
        expired_ids.Add(id);
        continue;
      }
      EmitResult& result = results[r.submission][r.item];
      result.message_id = id;
      result.duplicate = true;
      result.handlers = static_cast<int>(earlier.GetInt64(row, 3));
    }
    for (const ItemRef& r : refs) {
      if (results[r.submission][r.item].message_id.empty() &&
          std::find_if(expired.begin(), expired.end(), [&](const ItemRef& e) {
            return e.submission == r.submission && e.item == r.item;
          }) == expired.end()) {
        // Its key was taken by an emit that committed a moment ago and is
        // gone again (deleted): retry the whole call.
        return absl::AbortedError("idempotency key changed concurrently");
      }
    }
    if (expired.empty()) return absl::OkStatus();
    RIO_RETURN_IF_ERROR(
        conn.Exec("UPDATE messages SET idempotency_key = NULL WHERE id = "
                  "ANY($1::uuid[])",
                  {std::move(expired_ids).Finish()})
            .status());
    RIO_ASSIGN_OR_RETURN(store::PgResult again,
                         conn.Exec(kInsertMessages, message_params(expired)));
    absl::flat_hash_set<std::string> inserted;
    for (int i = 0; i < again.rows(); ++i) {
      inserted.insert(std::string(again.Get(i, 0)));
    }
    if (inserted.size() != expired.size()) {
      return absl::AbortedError("idempotency key reused concurrently");
    }
    std::vector<store::PgParam> params;
    if (plan_deliveries(expired, inserted, params) == 0) {
      return absl::OkStatus();
    }
    RIO_ASSIGN_OR_RETURN(
        store::PgResult created_rows,
        conn.Exec(absl::StrCat("WITH d AS (", delivery_insert(1),
                               " RETURNING id, status) SELECT id FROM d "
                               "WHERE status = 'PENDING'"),
                  params));
    absl::flat_hash_set<std::string> created;
    for (int i = 0; i < created_rows.rows(); ++i) {
      created.insert(std::string(created_rows.Get(i, 0)));
    }
    keep_created(created);
    return absl::OkStatus();
  });
  if (!settled.ok()) {
    // Only the submissions with a conflicted item fail; the first
    // statement's work stands (and its deliveries are dispatched).
    jobs.clear();
    for (const ItemRef& r : refs) unsettled[r.submission] = settled;
  }
  for (dispatch::DeliveryJob& job : committed) jobs.push_back(std::move(job));
  return absl::OkStatus();
}

}  // namespace rio::ingest
