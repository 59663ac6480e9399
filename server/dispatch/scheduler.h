// The scheduler: keeps this instance's heartbeat in rio_instances and feeds
// the dispatcher with due deliveries from PostgreSQL, the source of truth:
// retries whose time has come and deliveries leased to instances whose
// heartbeat is older than the lease timeout (crashed ones, or this one
// before a restart). Claims use FOR UPDATE SKIP LOCKED, so instances never
// claim the same delivery, and only as many as the dispatcher has room for.
//
// It also runs the batches of recovery jobs (store/recovery_store.h) when
// they are due.
//
// It wakes when told a retry is due (Poke), on a NOTIFY on "rio_due" (sent
// when an instance releases or re-queues deliveries), and at least every
// `poll_interval`.
//
// Thread-safety: Poke from any thread; Start/Stop from one.
#ifndef RIO_SERVER_DISPATCH_SCHEDULER_H_
#define RIO_SERVER_DISPATCH_SCHEDULER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/dispatcher.h"
#include "server/dispatch/job.h"
#include "server/store/catalog.h"
#include "server/store/lease_store.h"
#include "server/store/pg.h"

namespace rio::dispatch {

class Scheduler {
 public:
  struct Options {
    // A UUID naming this instance in leases. Random per process unless the
    // operator keeps one (--instance_id): then a restart after a crash takes
    // its own leases back at once.
    std::string instance_id;
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration poll_interval = absl::Seconds(1);
  };

  Scheduler(Options options, std::string database_url, store::Catalog* catalog,
            Dispatcher* dispatcher, OutcomeSink* sink);
  ~Scheduler();

  // Takes the instance id (FAILED_PRECONDITION if a live process holds it),
  // registers the instance (first heartbeat), makes the deliveries still
  // leased to this id by a process before it due at once, and starts the
  // thread.
  absl::Status Start();
  // Asks for a claim round no later than `due`.
  void Poke(absl::Time due);
  // A recovery job was created: look for due batches at once.
  void PokeRecoveries();
  // Hands `jobs`, leased to this instance but refused by the dispatcher
  // (full), back to PostgreSQL: released and due at once, for whichever
  // instance has room first. Done by the scheduler thread soon after; if the
  // process dies first, their leases lapse as usual.
  void Requeue(std::vector<DeliveryJob> jobs);
  // Stops claiming and joins the thread.
  void Stop();

  // Releases every pending delivery still leased to this instance (due at
  // once), removes its heartbeat row, and NOTIFYs "rio_due" so other
  // instances pick them up at once. Call after Stop().
  absl::Status ReleaseAll();

 private:
  void Loop();
  // Claims up to `room` due deliveries, none of the dispatcher's full
  // handlers; returns how many were claimed.
  absl::StatusOr<int> Claim(store::PgConnection& conn, int room);
  // Writes the releases Requeue asked for.
  absl::Status WriteRequeued(store::PgConnection& conn);

  const Options options_;
  // The instance's leases. Its advisory lock, held on conn_, keeps two live
  // processes from sharing an id (and so its leases).
  const store::Leases leases_;
  const std::string url_;
  store::Catalog* const catalog_;
  Dispatcher* const dispatcher_;
  OutcomeSink* const sink_;
  std::unique_ptr<store::PgConnection> conn_;  // the scheduler thread's
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  absl::Time poke_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // When to look for a due recovery batch next, unless poked before.
  absl::Time next_recovery_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool recovery_poked_ ABSL_GUARDED_BY(mu_) = false;
  // Delivery ids handed to Requeue and not released yet.
  std::vector<std::string> requeue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_SCHEDULER_H_
