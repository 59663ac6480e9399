// The dispatcher: one thread owning a libcurl multi handle (and so one
// keep-alive connection pool), making HTTP calls for DeliveryJobs.
//
// Jobs wait in per-handler FIFO queues and are started round-robin across
// handlers, never more than `max_in_flight` transfers at once and never more
// than `max_per_handler` to one handler, so one slow or dead receiver cannot
// take every slot. Curl is handed only transfers that may run now (its
// timeouts count time spent queued inside it). Each finished attempt becomes
// an AttemptOutcome for the OutcomeSink.
//
// Thread-safety: Submit, Room, InFlight and Stop may be called from any thread;
// the CURLM and easy handles are touched only by the dispatcher thread.
#ifndef RIO_SERVER_DISPATCH_DISPATCHER_H_
#define RIO_SERVER_DISPATCH_DISPATCHER_H_

#include <curl/curl.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/job.h"
#include "server/dispatch/retry_policy.h"

namespace rio::dispatch {

// Receives finished attempts (called on the dispatcher thread; must not
// block).
class OutcomeSink {
 public:
  virtual ~OutcomeSink() = default;
  virtual void Record(AttemptOutcome outcome) = 0;
  // Whether an outcome of the delivery was recorded and is not written yet
  // (its delivery must not be claimed again meanwhile).
  virtual bool Holds(const std::string& delivery_id) const {
    (void)delivery_id;
    return false;
  }
};

class Dispatcher {
 public:
  struct Options {
    int max_in_flight = 256;
    int max_per_handler = 32;
    absl::Duration connect_timeout = absl::Seconds(5);
    std::string user_agent = "rio";
  };

  Dispatcher(Options options, RetryPolicy policy, OutcomeSink* sink);
  ~Dispatcher();  // Stop(absl::ZeroDuration()) if running

  void Start();

  // Queues jobs; they start as soon as limits allow.
  void Submit(std::vector<DeliveryJob> jobs);

  // How many more jobs could start now without queueing.
  int Room() const;

  // Whether the delivery is waiting or in flight here.
  bool Holds(const std::string& delivery_id) const;

  // HTTP calls in flight now.
  int InFlight() const {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }

  // Stops starting jobs, lets transfers in flight finish for up to `grace`,
  // aborts the rest, joins the thread. Returns the jobs that did not finish
  // (queued or aborted): their deliveries are still leased to this instance
  // and should be released.
  std::vector<DeliveryJob> Stop(absl::Duration grace);

 private:
  struct Transfer;

  void Loop();
  void StartReadyJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartTransfer(DeliveryJob job);
  void FinishTransfer(CURL* easy, CURLcode code);

  const Options options_;
  const RetryPolicy policy_;
  OutcomeSink* const sink_;
  CURLM* multi_ = nullptr;  // owned by the dispatcher thread once started
  std::thread thread_;

  mutable absl::Mutex mu_;
  // Handler id -> its waiting jobs.
  absl::flat_hash_map<std::string, std::deque<DeliveryJob>> waiting_
      ABSL_GUARDED_BY(mu_);
  // Handlers with waiting jobs, in round-robin order.
  std::deque<std::string> ready_handlers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> in_flight_by_handler_
      ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Delivery ids of every job waiting or in flight.
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
  int waiting_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
  std::vector<DeliveryJob> unfinished_ ABSL_GUARDED_BY(mu_);

  // Jobs picked by StartReadyJobs, started by the loop outside the lock.
  std::vector<DeliveryJob> to_start_;
  absl::flat_hash_map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::string log_;          // REQUEST/RESPONSE lines of the current round
  std::vector<CURL*> idle_;  // reset handles ready for reuse
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_DISPATCHER_H_
