// The dispatcher: one thread owning a libcurl multi handle (and so one
// keep-alive connection pool), making HTTP calls for DeliveryJobs.
//
// Jobs wait in per-handler FIFO queues and are started round-robin across
// handlers, never more than `max_in_flight` transfers at once, never more
// than `max_per_handler` to one handler, so one slow or dead receiver cannot
// take every slot, and never more than `max_per_host` to one scheme, host and
// port, so many handlers on one receiver share a bounded set of keep-alive
// connections instead of opening one per call in flight. Curl is handed only
// transfers that may run now (its timeouts count time spent queued inside it).
// Each finished attempt becomes an AttemptOutcome for the OutcomeSink.
//
// What it holds is bounded (jobs, jobs per handler, payload bytes): Submit
// refuses what does not fit, and the caller hands those deliveries back to
// PostgreSQL, where they wait until there is room (Scheduler::Requeue).
//
// The loop is event-driven (curl's socket API): it waits in epoll for the
// sockets curl asks it to watch, an eventfd that Submit and Stop signal, and
// curl's timer (connect and transfer timeouts), then lets curl act on just
// the sockets that are ready, so a round's cost does not grow with the number
// of transfers in flight.
//
// Thread-safety: Submit, Room, InFlight, Holds and Stop may be called from any
// thread; the CURLM, the easy handles and the epoll set are touched only by
// the dispatcher thread (and by the destructor once it has been joined).
#ifndef RIO_SERVER_DISPATCH_DISPATCHER_H_
#define RIO_SERVER_DISPATCH_DISPATCHER_H_

#include <curl/curl.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispatch/egress_guard.h"
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
  // Outcomes recorded and not yet written: they count against the
  // dispatcher's bound on what it holds, so a slow database cannot make
  // recorded outcomes pile up without limit.
  virtual size_t Backlog() const { return 0; }
};

// "scheme://host:port" of a URL as written (the part before the path,
// query or fragment); the URL itself when it has no "://".
absl::string_view OriginOf(absl::string_view url);

class Dispatcher {
 public:
  struct Options {
    int max_in_flight = 256;
    int max_per_handler = 32;
    int max_per_host = 64;
    // Most jobs held (waiting or in flight), in all and per handler, and
    // most payload bytes they hold (a job that alone is larger is taken when
    // nothing else is held). A job without its payload is a few hundred
    // bytes: deliveries held here cost PostgreSQL no claim.
    int max_queued = 8192;
    int max_queued_per_handler = 2048;
    // Most outcomes recorded and not yet written (each keeps up to 64 KiB of
    // the response): while the sink holds this many, nothing more is taken.
    int max_outcome_backlog = 1024;
    int64_t max_queued_bytes = int64_t{64} << 20;
    int64_t max_queued_bytes_per_handler = int64_t{16} << 20;
    absl::Duration connect_timeout = absl::Seconds(5);
    std::string user_agent = "rio";
    // Checks every address a call connects to (and http:// under
    // https_only); null allows everything. Not owned; outlives the
    // dispatcher.
    const EgressGuard* egress = nullptr;
    // An HTTP proxy every call tunnels through with CONNECT
    // (--egress_proxy); it then decides which destinations are reachable,
    // so the guard checks only literal addresses in URLs when handlers are
    // saved.
    std::string proxy;
    // "HOST:PORT:ADDRESS" entries pinning names (curl's --resolve), checked
    // by the guard like resolved addresses.
    std::vector<std::string> resolve;
    // A PEM file of roots trusted besides the system's (--ca_file).
    std::string ca_file;
  };

  Dispatcher(Options options, RetryPolicy policy, OutcomeSink* sink);
  ~Dispatcher();  // Stop(absl::ZeroDuration()) if running

  void Start();

  // Queues the jobs that fit under the max_queued* bounds; they start as
  // soon as the in-flight limits allow. Returns the others (a job already
  // held is neither queued twice nor returned).
  [[nodiscard]] std::vector<DeliveryJob> Submit(std::vector<DeliveryJob> jobs);

  // Which of `jobs` Submit would take now, in order (a forecast: others may
  // submit meanwhile). Ingest leases only these to this instance and leaves
  // the rest in PostgreSQL, due and unleased, rather than having them
  // refused and handed back.
  std::vector<bool> WouldTake(const std::vector<DeliveryJob>& jobs) const;

  // How many more jobs could start now without queueing (0 while the held
  // payload bytes are at their bound).
  int Room() const;

  // Handlers holding max_queued_per_handler jobs or
  // max_queued_bytes_per_handler bytes: Submit refuses more of theirs, so
  // they are not worth claiming.
  std::vector<std::string> FullHandlers() const;

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

  // Curl's CURLMOPT_SOCKETFUNCTION: keeps the epoll set in step with the
  // sockets curl wants watched.
  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* self,
                      void* socket_data);
  // Curl's CURLMOPT_TIMERFUNCTION: when to call it with CURL_SOCKET_TIMEOUT.
  static int OnTimer(CURLM* multi, long timeout_ms, void* self);
  // Curl's CURLOPT_OPENSOCKETFUNCTION: the egress guard's check of the
  // address about to be connected to, after name resolution.
  static curl_socket_t OnOpenSocket(void* transfer, curlsocktype purpose,
                                    curl_sockaddr* address);

  void Loop();
  // The sink's backlog of unwritten outcomes (bounded by
  // max_outcome_backlog). Takes the sink's lock: call without mu_ held.
  int SinkBacklog() const;
  // Wakes the loop from any thread.
  void Wake();
  // Lets curl act on its timer, if due by `now`.
  void ActOnTimer(absl::Time now);
  void StartReadyJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartTransfer(DeliveryJob job);
  void FinishTransfer(CURL* easy, CURLcode code);

  const Options options_;
  const RetryPolicy policy_;
  OutcomeSink* const sink_;
  CURLM* multi_ = nullptr;  // owned by the dispatcher thread once started
  curl_slist* resolve_ = nullptr;  // options_.resolve for CURLOPT_RESOLVE
  std::string ca_path_;            // the system's root directory
  int epoll_fd_ = -1;              // curl's sockets and wake_fd_
  int wake_fd_ = -1;               // eventfd: Submit and Stop signal the loop
  std::thread thread_;

  mutable absl::Mutex mu_;
  // Handler id -> its waiting jobs.
  absl::flat_hash_map<std::string, std::deque<DeliveryJob>> waiting_
      ABSL_GUARDED_BY(mu_);
  // Handlers with waiting jobs, in round-robin order.
  std::deque<std::string> ready_handlers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> in_flight_by_handler_
      ABSL_GUARDED_BY(mu_);
  // OriginOf(url) -> transfers in flight to it.
  absl::flat_hash_map<std::string, int> in_flight_by_origin_
      ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Delivery ids of every job waiting or in flight.
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
  int waiting_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Payload bytes of the jobs waiting or in flight, in all and per handler.
  int64_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  struct HandlerLoad {
    int jobs = 0;
    int64_t bytes = 0;
  };
  absl::flat_hash_map<std::string, HandlerLoad> held_by_handler_
      ABSL_GUARDED_BY(mu_);
  // Whether one more job of `bytes` fits beside `held` jobs holding
  // `held_bytes`, `load` of them its handler's, while the sink holds
  // `backlog` outcomes.
  bool Fits(const HandlerLoad& load, int64_t bytes, int64_t held,
            int64_t held_bytes, size_t held_jobs, int backlog) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // A moving mean of the payload sizes submitted, to size claims in bytes.
  int64_t mean_payload_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_);
  std::vector<DeliveryJob> unfinished_ ABSL_GUARDED_BY(mu_);

  // Owned by the dispatcher thread:
  // Jobs picked by StartReadyJobs, started by the loop outside the lock.
  std::vector<DeliveryJob> to_start_;
  // Every Transfer made; each keeps its easy handle for the next job.
  std::vector<std::unique_ptr<Transfer>> transfers_;
  std::vector<Transfer*> idle_;  // not in flight, ready for reuse
  std::string log_;              // REQUEST/RESPONSE lines of the current round
  // When curl wants CURL_SOCKET_TIMEOUT; InfiniteFuture() when it has no
  // timer.
  absl::Time timer_due_ = absl::InfiniteFuture();
  uint64_t timer_calls_ = 0;  // OnTimer calls so far
};

// Checks the options that come from flags, before a Dispatcher is made:
// each of `resolve` is HOST:PORT:ADDRESS with one literal address, `proxy`
// is an http:// or https:// URL, `ca_file` holds at least one PEM
// certificate. INVALID_ARGUMENT naming the flag and the entry otherwise.
absl::Status CheckWebhookCallFlags(const Dispatcher::Options& options);

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_DISPATCHER_H_
