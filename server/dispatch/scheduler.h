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
#include "server/store/pg.h"

namespace rio::dispatch {

class Scheduler {
 public:
  struct Options {
    std::string instance_id;  // this process's UUID
    absl::Duration lease_timeout = absl::Seconds(30);
    absl::Duration poll_interval = absl::Seconds(1);
  };

  Scheduler(Options options, std::string database_url, store::Catalog* catalog,
            Dispatcher* dispatcher, OutcomeSink* sink);
  ~Scheduler();

  // Registers the instance (first heartbeat) and starts the thread.
  absl::Status Start();
  // Asks for a claim round no later than `due`.
  void Poke(absl::Time due);
  // A recovery job was created: look for due batches at once.
  void PokeRecoveries();
  // Stops claiming and joins the thread.
  void Stop();

  // Releases this instance's leases of `jobs` (and of every pending delivery
  // still leased to it), removes its heartbeat row, and NOTIFYs "rio_due" so
  // other instances pick them up at once. Call after Stop().
  absl::Status ReleaseAll();

 private:
  void Loop();
  absl::Status Heartbeat(store::PgConnection& conn);
  // Claims up to `room` due deliveries; returns how many were claimed.
  absl::StatusOr<int> Claim(store::PgConnection& conn, int room);

  const Options options_;
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
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_SCHEDULER_H_
