// The ingest writer: gathers emits and commits them in groups. Everything
// submitted while a writer's previous commit was in flight goes into its
// next transaction (group commit), so throughput is not bound by one fsync
// per emit; several writers overlap their round trips. A submission (one Emit,
// or one whole EmitBatch) is all-or-nothing.
//
// After a commit, the new deliveries, already leased to this instance, go
// straight to the dispatcher, and every submission's callback is called with
// its outcomes (this is when the RPC is answered). When more submissions
// are waiting, the callbacks are called once the next group is on its way
// to the database, so that the answers overlap its work.
//
// Thread-safety: Submit from any thread; Start/Stop from one.
#ifndef RIO_SERVER_INGEST_INGEST_WRITER_H_
#define RIO_SERVER_INGEST_INGEST_WRITER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/job.h"
#include "server/store/catalog.h"
#include "server/store/pg.h"
#include "server/util/metrics.h"

namespace rio::ingest {

// One validated event to record.
struct EmitItem {
  std::string message_id;  // chosen by the caller (a UUID)
  int64_t project_id = 0;
  std::string project;  // slug
  std::string event;
  std::shared_ptr<const std::string> payload;  // a JSON object
  std::string idempotency_key;                 // empty: none
  std::string sender;
  // The event's enabled handlers at the time of the emit.
  std::vector<std::shared_ptr<const store::CachedHandler>> handlers;
  // Its disabled handlers: their deliveries are recorded as CANCELLED (and
  // not sent), so that they can be recovered once the handler is enabled.
  std::vector<std::string> disabled_handler_ids;
};

struct EmitResult {
  std::string message_id;
  int handlers = 0;
  bool duplicate = false;
};

class IngestWriter {
 public:
  using Done = std::function<void(absl::StatusOr<std::vector<EmitResult>>)>;
  using Dispatch = std::function<void(std::vector<dispatch::DeliveryJob>)>;

  struct Options {
    std::string instance_id;
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration idempotency_window = absl::Hours(24 * 7);
    // Most items in one transaction.
    size_t max_group_items = 5000;
    // Most payload bytes in one transaction (a larger submission goes
    // alone): each statement's parameters, and libpq's send buffer, which
    // keeps its largest size, are a few times this.
    int64_t max_group_bytes = int64_t{8} << 20;
    // Writer threads, each committing its own groups.
    int writers = 1;
    // Most events, and payload bytes, submitted and not yet committed:
    // beyond them Submit refuses (RESOURCE_EXHAUSTED), so a flood of emits
    // faster than PostgreSQL commits cannot grow memory without bound.
    int64_t max_queued_events = 20000;
    int64_t max_queued_bytes = int64_t{64} << 20;
    // Where rio_emit_wait_seconds and rio_emit_commit_seconds go (none:
    // not exported).
    util::MetricsRegistry* metrics = nullptr;
    // Which of a commit's deliveries the dispatcher has room for now
    // (Dispatcher::WouldTake). Those are leased to this instance and go to
    // `dispatch` after the commit; the others are written due and leased to
    // no one, for a scheduler (this instance's or another's) to claim, and
    // `queued` is called after the commit. None: all are leased.
    std::function<std::vector<bool>(const std::vector<dispatch::DeliveryJob>&)>
        room;
    std::function<void()> queued;
  };

  IngestWriter(Options options, std::string database_url, Dispatch dispatch);
  ~IngestWriter();

  absl::Status Start();
  // Records `items` atomically and calls `done` (from the writer thread).
  // RESOURCE_EXHAUSTED, naming the bound and its flag, when they would take
  // the queue beyond max_queued_events or max_queued_bytes (unless it is
  // empty); `done` is not called then. REQUIRES: Stop() not called.
  [[nodiscard]] absl::Status Submit(std::vector<EmitItem> items, Done done);
  // Commits everything submitted so far, then joins the thread.
  void Stop();

 private:
  struct Submission {
    std::vector<EmitItem> items;
    Done done;
    absl::Time submitted;
    int64_t bytes = 0;  // payload bytes of the items
  };

  // Write's steps on one group (ingest_writer.cc).
  class GroupWrite;

  // Calls owed to submissions committed earlier, run by the writer thread.
  using Answers = std::function<void()>;

  void Loop(store::PgConnection* conn);
  // Writes `group` in one transaction; on success fills `results` (one
  // vector per submission), `jobs` (the deliveries leased to this instance)
  // and `unleased` (how many were written for any scheduler to claim).
  // Calls `on_sent` once the first statement is sent (not at all when it
  // cannot be).
  // An error means nothing was written. `unsettled[i]` is set for a
  // submission that failed after the first statement committed.
  absl::Status Write(store::PgConnection& conn,
                     const std::vector<Submission>& group,
                     std::vector<std::vector<EmitResult>>& results,
                     std::vector<dispatch::DeliveryJob>& jobs, size_t& unleased,
                     std::vector<absl::Status>& unsettled,
                     const std::function<void()>& on_sent);
  // Commits `group` and dispatches its deliveries. Pays `owed` (the answers
  // of the group before) once this group's statement is sent, and leaves
  // this group's answers in it.
  void Commit(store::PgConnection& conn, std::vector<Submission> group,
              Answers& owed);

  const Options options_;
  const std::string url_;
  const Dispatch dispatch_;
  util::MetricsRegistry unexported_;  // used when given no registry
  util::Histogram* const wait_;
  util::Histogram* const commit_;
  // One connection per writer thread: while one group commits, the next
  // is written on another connection.
  std::vector<std::unique_ptr<store::PgConnection>> conns_;
  std::vector<std::thread> threads_;

  absl::Mutex mu_;
  std::vector<Submission> queue_ ABSL_GUARDED_BY(mu_);
  // Events and payload bytes submitted and not yet committed (queued, or
  // in a group being written).
  int64_t held_events_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rio::ingest

#endif  // RIO_SERVER_INGEST_INGEST_WRITER_H_
