#include <algorithm>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "internal.h"
#include "rio/client.h"

namespace rio {
namespace {

using Promise = std::promise<absl::StatusOr<EmitResult>>;
using Future = std::future<absl::StatusOr<EmitResult>>;

// Rio takes at most this many events in one EmitBatch.
constexpr size_t kMaxBatchEvents = 1000;

Future Ready(absl::StatusOr<EmitResult> result) {
  Promise promise;
  promise.set_value(std::move(result));
  return promise.get_future();
}

absl::Status Validate(const PublisherOptions& options) {
  if (options.max_batch_events < 1 ||
      options.max_batch_events > kMaxBatchEvents) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PublisherOptions.max_batch_events must be 1 to ", kMaxBatchEvents));
  }
  if (options.max_batch_bytes < 1) {
    return absl::InvalidArgumentError(
        "PublisherOptions.max_batch_bytes must be at least 1");
  }
  if (options.max_batch_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "PublisherOptions.max_batch_delay may not be negative");
  }
  if (options.max_pending_events < 1) {
    return absl::InvalidArgumentError(
        "PublisherOptions.max_pending_events must be at least 1");
  }
  return absl::OkStatus();
}

// Whether Rio refused the batch because of what is in it (nothing was
// recorded), so that sending its events one by one isolates the culprit.
bool RejectedForContent(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kResourceExhausted;
}

}  // namespace

// Lifecycle of an event: Publish() appends it to `queue_` (counted in
// `published_`); the sender thread moves up to one batch out of the queue
// (counted in `taken_`), sends it without holding `mu_`, fulfils each
// promise, and then counts the batch in `completed_`. Since one thread sends
// batches in queue order, "every event up to number n is answered" is
// `completed_ >= n`, which is what Flush() waits for.
class Publisher::Impl {
 public:
  Impl(Client client, PublisherOptions options)
      : client_(std::move(client)),
        options_(options),
        status_(client_.status().ok() ? Validate(options_) : client_.status()) {
    if (status_.ok()) thread_ = std::thread([this] { SendLoop(); });
  }

  ~Impl() { Shutdown(); }

  absl::Status status() const { return status_; }

  Future Publish(Event event) ABSL_LOCKS_EXCLUDED(mu_) {
    if (!status_.ok()) return Ready(status_);
    if (event.idempotency_key.empty()) {
      event.idempotency_key = client_internal::RandomUuid();
    }
    const size_t bytes = event.event.size() + event.payload_json.size() +
                         event.idempotency_key.size();
    absl::MutexLock lock(&mu_);
    while (!shutting_down_ &&
           published_ - completed_ >= options_.max_pending_events) {
      if (!options_.block_when_full) {
        return Ready(absl::ResourceExhaustedError(absl::StrCat(
            "the Publisher already holds ", options_.max_pending_events,
            " unanswered events (PublisherOptions.max_pending_events)")));
      }
      answered_.Wait(&mu_);
    }
    if (shutting_down_) {
      return Ready(absl::FailedPreconditionError("the Publisher is shut down"));
    }
    Pending pending{std::move(event), bytes, absl::Now(), Promise()};
    Future future = pending.promise.get_future();
    queue_.push_back(std::move(pending));
    queued_bytes_ += bytes;
    ++published_;
    work_.Signal();
    return future;
  }

  void Flush() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    const uint64_t target = published_;
    flush_target_ = std::max(flush_target_, target);
    work_.Signal();
    while (completed_ < target) answered_.Wait(&mu_);
  }

  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      shutting_down_ = true;
      work_.Signal();
      answered_.SignalAll();  // Publish() calls waiting for room.
    }
    std::call_once(joined_, [this] {
      if (thread_.joinable()) thread_.join();
    });
  }

 private:
  struct Pending {
    Event event;
    size_t bytes;
    absl::Time enqueued;
    Promise promise;
  };

  // Whether the queue's head should go now rather than wait for more.
  bool BatchIsDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutting_down_ || flush_target_ > taken_ ||
           queue_.size() >= options_.max_batch_events ||
           queued_bytes_ >= options_.max_batch_bytes;
  }

  void SendLoop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    while (true) {
      while (queue_.empty() && !shutting_down_) work_.Wait(&mu_);
      if (queue_.empty()) return;  // Shutting down, nothing left.
      const absl::Time due = queue_.front().enqueued + options_.max_batch_delay;
      while (!BatchIsDue()) {
        if (work_.WaitWithDeadline(&mu_, due)) break;  // Timed out.
      }

      std::vector<Pending> batch;
      size_t batch_bytes = 0;
      while (!queue_.empty() && batch.size() < options_.max_batch_events &&
             (batch.empty() ||
              batch_bytes + queue_.front().bytes <= options_.max_batch_bytes)) {
        batch_bytes += queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_bytes_ -= batch_bytes;
      taken_ += batch.size();

      mu_.Unlock();
      Send(batch);
      mu_.Lock();
      completed_ += batch.size();
      answered_.SignalAll();
    }
  }

  // Sends one batch and fulfils every promise in it. REQUIRES: mu_ not held.
  void Send(std::vector<Pending>& batch) {
    if (batch.size() > 1) {
      std::vector<Event> events;
      events.reserve(batch.size());
      for (const Pending& pending : batch) events.push_back(pending.event);
      absl::StatusOr<std::vector<EmitResult>> results =
          client_.EmitBatch(events);
      if (results.ok()) {
        for (size_t i = 0; i < batch.size(); ++i) {
          batch[i].promise.set_value(std::move((*results)[i]));
        }
        return;
      }
      if (!RejectedForContent(results.status())) {
        for (Pending& pending : batch) {
          pending.promise.set_value(results.status());
        }
        return;
      }
    }
    for (Pending& pending : batch) {
      pending.promise.set_value(client_.Emit(pending.event));
    }
  }

  // Constant after construction.
  const Client client_;
  const PublisherOptions options_;
  const absl::Status status_;
  std::thread thread_;
  std::once_flag joined_;

  absl::Mutex mu_;
  absl::CondVar work_;      // For the sender: events queued, flush, shutdown.
  absl::CondVar answered_;  // For Flush() and Publish(): a batch answered.
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  // Events numbered up to this go without waiting for a full batch.
  uint64_t flush_target_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

Publisher::Publisher(Client client, PublisherOptions options)
    : impl_(std::make_unique<Impl>(std::move(client), options)) {}

Publisher::~Publisher() = default;

absl::Status Publisher::status() const { return impl_->status(); }

std::future<absl::StatusOr<EmitResult>> Publisher::Publish(Event event) {
  return impl_->Publish(std::move(event));
}

std::future<absl::StatusOr<EmitResult>> Publisher::Publish(
    absl::string_view event, absl::string_view payload_json) {
  Event e;
  e.event = std::string(event);
  e.payload_json = std::string(payload_json);
  return impl_->Publish(std::move(e));
}

void Publisher::Flush() { impl_->Flush(); }

void Publisher::Shutdown() { impl_->Shutdown(); }

}  // namespace rio
