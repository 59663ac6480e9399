// When and how long the client waits before trying a failed call again.
//
// Thread-safety: RetryPolicy is a plain value; its const methods are
// thread-safe.
#ifndef RIO_RETRY_H_
#define RIO_RETRY_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace rio {

// Exponential backoff with jitter for transient failures.
//
// A call is tried at most `max_attempts` times. Before retry n (1, 2, ...)
// the client waits min(max_backoff, initial_backoff * multiplier^(n-1)),
// scaled by a random factor in [1 - jitter, 1 + jitter] so that many clients
// do not retry in step.
//
// Only `retryable_codes` are retried: UNAVAILABLE (nothing was recorded, or
// the reply was lost) and DEADLINE_EXCEEDED (the reply was late). Emits are
// safe to retry because every attempt of one emit carries the same
// idempotency key.
struct RetryPolicy {
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double multiplier = 2.0;
  double jitter = 0.2;
  std::vector<absl::StatusCode> retryable_codes = {
      absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded};

  // One attempt, never retried.
  static RetryPolicy NoRetry();

  // OK, or INVALID_ARGUMENT naming the first field out of range
  // (max_attempts >= 1, backoffs >= 0, multiplier >= 1, jitter in [0, 1]).
  absl::Status Validate() const;

  // Whether a call whose attempt number `attempt` (1-based) failed with
  // `code` gets another attempt.
  bool ShouldRetry(absl::StatusCode code, int attempt) const;

  // How long to wait before retry number `retry` (1-based); `random` is a
  // uniform draw from [0, 1] that picks the point in the jitter range.
  absl::Duration Backoff(int retry, double random) const;
};

}  // namespace rio

#endif  // RIO_RETRY_H_
