// The live tail (DeliveryService.TailDeliveries): every attempt this
// instance records is offered to the open tail streams whose filter it
// matches, once its outcome is committed.
//
// Thread-safety: all methods may be called from any thread.
#ifndef RIO_SERVER_API_TAIL_H_
#define RIO_SERVER_API_TAIL_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rio/v1/delivery.grpc.pb.h"
#include "server/api/admin.h"
#include "server/api/cq_server.h"
#include "server/dispatch/job.h"
#include "server/store/catalog.h"

namespace rio::api {

class TailHub {
 public:
  using Stream = StreamWriter<v1::TailDeliveriesResponse>;
  struct Filter {
    std::string project;     // slug; required
    std::string handler_id;  // empty: any
    std::string event;       // empty: any
  };

  struct Options {
    // Most tail streams open at once; one more gets RESOURCE_EXHAUSTED.
    int max_streams = 32;
    // Most bytes of messages waiting for one slow client; beyond it its
    // stream ends with RESOURCE_EXHAUSTED.
    size_t max_stream_bytes = 4 << 20;
  };

  TailHub(store::Catalog* catalog, Options options)
      : catalog_(catalog), options_(options) {}

  const Options& options() const { return options_; }

  void Subscribe(Filter filter, std::shared_ptr<Stream> stream);
  // Offers committed outcomes to the streams (the outcome writer's thread).
  // Costs nothing while no stream is open.
  void Publish(const std::vector<dispatch::AttemptOutcome>& batch);
  // Ends every stream (UNAVAILABLE: the server is shutting down) and takes
  // no more.
  void Close();

 private:
  struct Subscriber {
    Filter filter;
    std::shared_ptr<Stream> stream;
  };

  // Streams whose client went away leave here.
  void RemoveClosedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::Catalog* const catalog_;
  const Options options_;
  std::atomic<int> open_{0};
  absl::Mutex mu_;
  std::vector<Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Registers TailDeliveries of `service` with `server`.
void AddTailMethod(CqServer& server, v1::DeliveryService::AsyncService* service,
                   const AdminDeps& deps, TailHub* hub);

}  // namespace rio::api

#endif  // RIO_SERVER_API_TAIL_H_
