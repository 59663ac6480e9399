#include "server/dispatch/scheduler.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "server/store/recovery_store.h"
#include "server/util/status_macros.h"

namespace rio::dispatch {
namespace {

// Most refused deliveries waiting to be handed back; beyond it their leases
// simply lapse.
constexpr size_t kMaxRequeued = 100000;

}  // namespace

Scheduler::Scheduler(Options options, std::string database_url,
                     store::Catalog* catalog, Dispatcher* dispatcher,
                     OutcomeSink* sink)
    : options_(std::move(options)),
      leases_(options_.instance_id, options_.lease_timeout),
      url_(std::move(database_url)),
      catalog_(catalog),
      dispatcher_(dispatcher),
      sink_(sink) {}

Scheduler::~Scheduler() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::Status Scheduler::Start() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return absl::InternalError("eventfd failed");
  RIO_ASSIGN_OR_RETURN(conn_, store::PgConnection::Connect(url_));
  RIO_RETURN_IF_ERROR(leases_.LockInstanceId(*conn_));
  RIO_RETURN_IF_ERROR(leases_.Heartbeat(*conn_));
  // Leases of an earlier process with this id (killed, or stopped without
  // releasing): nobody is sending those deliveries now.
  RIO_RETURN_IF_ERROR(leases_.ReclaimEarlierLeases(*conn_));
  RIO_RETURN_IF_ERROR(conn_->Exec("LISTEN rio_due").status());
  thread_ = std::thread(&Scheduler::Loop, this);
  return absl::OkStatus();
}

void Scheduler::Poke(absl::Time due) {
  {
    absl::MutexLock lock(&mu_);
    if (due >= poke_) return;
    poke_ = due;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Scheduler::PokeRecoveries() {
  {
    absl::MutexLock lock(&mu_);
    recovery_poked_ = true;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void Scheduler::Requeue(std::vector<DeliveryJob> jobs) {
  if (jobs.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    // Ids only: a bounded cost however long the database is away.
    for (DeliveryJob& job : jobs) {
      if (requeue_.size() >= kMaxRequeued) break;  // their leases lapse
      requeue_.push_back(std::move(job.delivery_id));
    }
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

absl::Status Scheduler::WriteRequeued(store::PgConnection& conn) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    ids.swap(requeue_);
  }
  if (ids.empty()) return absl::OkStatus();
  absl::Status written = leases_.Release(conn, ids);
  if (!written.ok()) {
    absl::MutexLock lock(&mu_);
    requeue_.insert(requeue_.end(), std::make_move_iterator(ids.begin()),
                    std::make_move_iterator(ids.end()));
  }
  return written;
}

void Scheduler::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<int> Scheduler::Claim(store::PgConnection& conn, int room) {
  RIO_ASSIGN_OR_RETURN(std::vector<store::ClaimedDelivery> claimed,
                       leases_.Claim(conn, room, dispatcher_->FullHandlers()));
  if (claimed.empty()) return 0;
  auto snapshot = catalog_->snapshot();
  std::vector<DeliveryJob> jobs;
  std::vector<std::string> awaiting_outcome;
  for (store::ClaimedDelivery& c : claimed) {
    // Still on its way: waiting or in flight here, or its outcome is not
    // written yet.
    if (dispatcher_->Holds(c.delivery_id)) continue;
    if (sink_->Holds(c.delivery_id)) {
      // Its outcome, once written, says when it is due; were it written a
      // moment ago, the claim just moved that to the lease's end.
      awaiting_outcome.push_back(std::move(c.delivery_id));
      continue;
    }
    DeliveryJob job;
    job.delivery_id = std::move(c.delivery_id);
    job.message_id = std::move(c.message_id);
    job.attempt = c.attempts + 1;
    job.project = std::move(c.project);
    job.event = std::move(c.event);
    job.payload = std::move(c.payload);
    job.manual = c.manual;
    auto handler = snapshot->handlers_by_id.find(c.handler_id);
    if (handler == snapshot->handlers_by_id.end() ||
        !handler->second->enabled) {
      // Disabled or deleted since: resolved without a call.
      AttemptOutcome o;
      o.delivery_id = job.delivery_id;
      o.message_id = job.message_id;
      o.handler_id = std::move(c.handler_id);
      o.attempt = job.attempt;
      o.manual = job.manual;
      o.attempted = false;
      o.start_time = absl::Now();
      o.cancelled = true;
      o.decision.verdict = Verdict::kFailed;
      o.decision.next_attempt_time = o.start_time;
      o.decision.reason = handler == snapshot->handlers_by_id.end()
                              ? "the handler was deleted"
                              : "the handler is disabled";
      sink_->Record(std::move(o));
      continue;
    }
    job.handler = handler->second;
    jobs.push_back(std::move(job));
  }
  std::vector<DeliveryJob> refused = dispatcher_->Submit(std::move(jobs));
  if (!refused.empty()) Requeue(std::move(refused));
  RIO_RETURN_IF_ERROR(leases_.DueSoon(conn, awaiting_outcome));
  return static_cast<int>(claimed.size());
}

void Scheduler::Loop() {
  pthread_setname_np(pthread_self(), "rio-scheduler");
  absl::Time next_heartbeat = absl::Now() + options_.lease_timeout / 3;
  bool backlog = false;
  while (!stopping_.load()) {
    absl::Time now = absl::Now();
    store::PgConnection& conn = *conn_;
    bool healthy = conn.ok();
    if (!healthy && conn.Reconnect().ok()) {
      // The lock went with the old session. Another process could have
      // taken the id meanwhile only if started by mistake with the same id.
      if (!leases_.LockInstanceId(conn).ok()) {
        std::fprintf(stderr,
                     "rio-server: another process holds --instance_id=%s\n",
                     options_.instance_id.c_str());
      }
      healthy = conn.Exec("LISTEN rio_due").ok();
    }
    if (healthy && now >= next_heartbeat) {
      healthy = leases_.Heartbeat(conn).ok();
      next_heartbeat = now + options_.lease_timeout / 3;
    }
    bool more = false;
    if (healthy) {
      {
        // A poke for a time already reached is served by this round; later
        // ones stay to set the next wake-up.
        absl::MutexLock lock(&mu_);
        if (poke_ <= now) poke_ = absl::InfiniteFuture();
      }
      if (absl::Status s = WriteRequeued(conn); !s.ok()) {
        std::fprintf(stderr, "rio-server: cannot hand back deliveries: %s\n",
                     std::string(s.message()).c_str());
      }
      int room = dispatcher_->Room();
      if (room > 0) {
        auto claimed = Claim(conn, room);
        backlog = claimed.ok() && *claimed == room;  // there may be more due
      }
      // With a backlog, come back as soon as the dispatcher has room again
      // rather than after a whole poll interval.
      more = backlog;
      bool recovery_due;
      {
        absl::MutexLock lock(&mu_);
        recovery_due = recovery_poked_ || next_recovery_ <= now;
        recovery_poked_ = false;
      }
      if (recovery_due) {
        // Jobs created elsewhere are found within a poll interval.
        absl::Time next = now + options_.poll_interval;
        if (auto due = store::RunRecoveryBatch(conn); due.ok()) {
          next = std::min(next, *due);
        } else {
          std::fprintf(stderr, "rio-server: recovery batch failed: %s\n",
                       std::string(due.status().message()).c_str());
        }
        absl::MutexLock lock(&mu_);
        next_recovery_ = next;
      }
    }
    absl::Time wake = std::min(now + options_.poll_interval, next_heartbeat);
    {
      absl::MutexLock lock(&mu_);
      wake = std::min({wake, poke_, next_recovery_});
      if (recovery_poked_) wake = now;
    }
    if (more) wake = now + absl::Milliseconds(5);  // let the dispatcher drain
    int timeout_ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - absl::Now())));
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {PQsocket(conn.raw()), POLLIN, 0}};
    int nfds = conn.ok() ? 2 : 1;
    if (poll(fds, nfds, timeout_ms) > 0) {
      uint64_t drained;
      (void)!read(wake_fd_, &drained, sizeof(drained));
      if (nfds == 2 && (fds[1].revents & POLLIN)) {
        PQconsumeInput(conn.raw());
        while (PGnotify* note = PQnotifies(conn.raw())) PQfreemem(note);
      }
    }
  }
}

absl::Status Scheduler::ReleaseAll() {
  if (conn_ == nullptr) return absl::OkStatus();
  if (!conn_->ok()) RIO_RETURN_IF_ERROR(conn_->Reconnect(absl::ZeroDuration()));
  return leases_.ReleaseAll(*conn_);
}

}  // namespace rio::dispatch
