#include "server/ingest/ingest_writer.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "server/store/emit_store.h"
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

// Writes one group: results, the deliveries planned for the statement being
// written, and the jobs kept for the dispatcher.
class IngestWriter::GroupWrite {
 public:
  GroupWrite(const Options& options, const std::vector<Submission>& group,
             std::vector<std::vector<EmitResult>>& results,
             std::vector<dispatch::DeliveryJob>& jobs, size_t& unleased)
      : options_(options),
        group_(group),
        results_(results),
        jobs_(jobs),
        unleased_(unleased),
        lease_{options.instance_id, options.lease_timeout} {
    results_.assign(group_.size(), {});
    jobs_.clear();
    unleased_ = 0;
    for (size_t s = 0; s < group_.size(); ++s) {
      results_[s].resize(group_[s].items.size());
      for (size_t i = 0; i < group_[s].items.size(); ++i) {
        all_.push_back({s, i});
      }
    }
  }

  // The common case in one statement (its own transaction, one round trip):
  // every message and its deliveries. Returns the items whose idempotency
  // key was taken: skipped, for Settle.
  absl::StatusOr<std::vector<ItemRef>> WriteAll(
      store::PgConnection& conn, const std::function<void()>& on_sent) {
    absl::flat_hash_set<std::string> all_ids;
    for (const ItemRef& r : all_) all_ids.insert(item(r).message_id);
    store::DeliveryRows deliveries = PlanDeliveries(all_, all_ids);
    RIO_RETURN_IF_ERROR(
        store::SendEmit(conn, Messages(all_), std::move(deliveries), lease_));
    on_sent();
    RIO_ASSIGN_OR_RETURN(store::EmitRows written, store::TakeEmitRows(conn));
    // The deliveries of skipped messages were not written.
    std::vector<dispatch::DeliveryJob> planned = std::move(planned_);
    planned_.clear();
    for (dispatch::DeliveryJob& job : planned) {
      if (written.messages.contains(job.message_id)) {
        planned_.push_back(std::move(job));
      }
    }
    std::vector<ItemRef> conflicted;
    for (const ItemRef& r : all_) {
      if (!written.messages.contains(item(r).message_id)) {
        results_[r.submission][r.item] = EmitResult();
        conflicted.push_back(r);
      }
    }
    KeepCreated(written.pending, all_);
    return conflicted;
  }

  // Settles the items whose idempotency key was taken, in the caller's
  // transaction: a duplicate of a message within the window is answered
  // with that message; a key older than the window is freed and the item
  // written.
  absl::Status Settle(store::PgConnection& conn,
                      const std::vector<ItemRef>& refs) {
    std::vector<int64_t> projects;
    std::vector<std::string> keys;
    for (const ItemRef& r : refs) {
      projects.push_back(item(r).project_id);
      keys.push_back(item(r).idempotency_key);
    }
    RIO_ASSIGN_OR_RETURN(std::vector<store::KeyHolder> holders,
                         store::FindKeyHolders(conn, projects, keys,
                                               options_.idempotency_window));
    std::vector<ItemRef> expired;
    std::vector<int64_t> expired_projects;
    std::vector<std::string> expired_keys, expired_ids;
    std::vector<bool> found(refs.size(), false);
    for (store::KeyHolder& holder : holders) {
      const ItemRef& r = refs[holder.index];
      found[holder.index] = true;
      if (!holder.within_window) {
        expired.push_back(r);
        expired_projects.push_back(projects[holder.index]);
        expired_keys.push_back(keys[holder.index]);
        expired_ids.push_back(std::move(holder.message_id));
        continue;
      }
      EmitResult& result = results_[r.submission][r.item];
      result.message_id = std::move(holder.message_id);
      result.duplicate = true;
      result.handlers = static_cast<int>(holder.deliveries);
    }
    for (bool held : found) {
      // Its key was taken by an emit that committed a moment ago and is
      // gone again (deleted): retry the whole call.
      if (!held)
        return absl::AbortedError("idempotency key changed concurrently");
    }
    if (expired.empty()) return absl::OkStatus();
    RIO_RETURN_IF_ERROR(store::FreeIdempotencyKeys(conn, expired_projects,
                                                   expired_keys, expired_ids));
    RIO_ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> inserted,
                         store::InsertMessages(conn, Messages(expired)));
    if (inserted.size() != expired.size()) {
      return absl::AbortedError("idempotency key reused concurrently");
    }
    store::DeliveryRows deliveries = PlanDeliveries(expired, inserted);
    if (deliveries.size() == 0) return absl::OkStatus();
    RIO_ASSIGN_OR_RETURN(
        absl::flat_hash_set<std::string> created,
        store::InsertDeliveries(conn, std::move(deliveries), lease_));
    KeepCreated(created, expired);
    return absl::OkStatus();
  }

 private:
  const EmitItem& item(const ItemRef& r) const {
    return group_[r.submission].items[r.item];
  }

  store::MessageRows Messages(const std::vector<ItemRef>& subset) const {
    store::MessageRows rows;
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      rows.Add(it.message_id, it.project_id, it.event, *it.payload,
               it.idempotency_key, it.sender);
    }
    return rows;
  }

  // Records the results and plans the delivery jobs of the items of
  // `subset` whose messages are in `inserted`; returns their rows. Those the
  // dispatcher has no room for now go in queued_: written unleased, not
  // dispatched from here.
  store::DeliveryRows PlanDeliveries(
      const std::vector<ItemRef>& subset,
      const absl::flat_hash_set<std::string>& inserted) {
    planned_.clear();
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      if (!inserted.contains(it.message_id)) continue;
      EmitResult& result = results_[r.submission][r.item];
      result.message_id = it.message_id;
      result.handlers = static_cast<int>(it.handlers.size());
      for (const auto& handler : it.handlers) {
        dispatch::DeliveryJob& job = planned_.emplace_back();
        job.delivery_id = util::TimeOrderedUuidBeside(it.message_id);
        job.message_id = it.message_id;
        job.project = it.project;
        job.event = it.event;
        job.payload = it.payload;
        job.handler = handler;
      }
    }
    const std::vector<bool> leased =
        options_.room ? options_.room(planned_)
                      : std::vector<bool>(planned_.size(), true);
    store::DeliveryRows rows;
    size_t next = 0;  // planned_ is in the order of this loop
    for (const ItemRef& r : subset) {
      const EmitItem& it = item(r);
      if (!inserted.contains(it.message_id)) continue;
      for (size_t h = 0; h < it.handlers.size(); ++h, ++next) {
        const dispatch::DeliveryJob& job = planned_[next];
        if (!leased[next]) queued_.insert(job.delivery_id);
        rows.Add(job.delivery_id, it.message_id, job.handler->id,
                 leased[next] ? store::NewDelivery::kLeased
                              : store::NewDelivery::kQueued);
      }
      for (const std::string& handler_id : it.disabled_handler_ids) {
        rows.Add(util::TimeOrderedUuidBeside(it.message_id), it.message_id,
                 handler_id, store::NewDelivery::kCancelled);
      }
    }
    return rows;
  }

  // Keeps the planned jobs of the deliveries `created` PENDING (those
  // leased go to the dispatcher); one not created (its handler was deleted
  // or disabled meanwhile) is not counted in its item's result.
  void KeepCreated(const absl::flat_hash_set<std::string>& created,
                   const std::vector<ItemRef>& subset) {
    for (dispatch::DeliveryJob& job : planned_) {
      if (created.contains(job.delivery_id)) {
        if (queued_.contains(job.delivery_id)) {
          ++unleased_;
        } else {
          jobs_.push_back(std::move(job));
        }
        continue;
      }
      for (const ItemRef& r : subset) {
        EmitResult& result = results_[r.submission][r.item];
        if (result.message_id == job.message_id && !result.duplicate) {
          --result.handlers;
          break;
        }
      }
    }
    planned_.clear();
  }

  const Options& options_;
  const std::vector<Submission>& group_;
  std::vector<std::vector<EmitResult>>& results_;
  std::vector<dispatch::DeliveryJob>& jobs_;
  size_t& unleased_;
  const store::Lease lease_;
  std::vector<ItemRef> all_;
  std::vector<dispatch::DeliveryJob> planned_;
  absl::flat_hash_set<std::string> queued_;
};

absl::Status IngestWriter::Write(store::PgConnection& conn,
                                 const std::vector<Submission>& group,
                                 std::vector<std::vector<EmitResult>>& results,
                                 std::vector<dispatch::DeliveryJob>& jobs,
                                 size_t& unleased,
                                 std::vector<absl::Status>& unsettled,
                                 const std::function<void()>& on_sent) {
  GroupWrite write(options_, group, results, jobs, unleased);
  RIO_ASSIGN_OR_RETURN(std::vector<ItemRef> conflicted,
                       write.WriteAll(conn, on_sent));
  if (conflicted.empty()) return absl::OkStatus();
  // The first statement's work stands whatever happens below (and its
  // deliveries are dispatched): only the submissions with a conflicted item
  // fail if settling them does.
  std::vector<dispatch::DeliveryJob> committed = std::move(jobs);
  jobs.clear();
  const size_t committed_unleased = unleased;
  absl::Status settled = conn.InTransaction(
      [&]() -> absl::Status { return write.Settle(conn, conflicted); });
  if (!settled.ok()) {
    jobs.clear();
    unleased = committed_unleased;
    for (const ItemRef& r : conflicted) unsettled[r.submission] = settled;
  }
  for (dispatch::DeliveryJob& job : committed) jobs.push_back(std::move(job));
  return absl::OkStatus();
}

}  // namespace rio::ingest
