#include "rio/retry.h"

#include <algorithm>
#include <cmath>

namespace rio {

RetryPolicy RetryPolicy::NoRetry() {
  RetryPolicy policy;
  policy.max_attempts = 1;
  return policy;
}

absl::Status RetryPolicy::Validate() const {
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(
        "RetryPolicy.max_attempts must be at least 1");
  }
  if (initial_backoff < absl::ZeroDuration() ||
      max_backoff < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "RetryPolicy backoffs may not be negative");
  }
  if (!(multiplier >= 1)) {
    return absl::InvalidArgumentError(
        "RetryPolicy.multiplier must be at least 1");
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    return absl::InvalidArgumentError(
        "RetryPolicy.jitter must be between 0 and 1");
  }
  return absl::OkStatus();
}

bool RetryPolicy::ShouldRetry(absl::StatusCode code, int attempt) const {
  return attempt < max_attempts &&
         std::find(retryable_codes.begin(), retryable_codes.end(), code) !=
             retryable_codes.end();
}

absl::Duration RetryPolicy::Backoff(int retry, double random) const {
  // pow() may overflow to infinity; the cap applies before scaling.
  const double growth = std::pow(multiplier, std::max(0, retry - 1));
  const absl::Duration base =
      std::isfinite(growth) && initial_backoff * growth < max_backoff
          ? initial_backoff * growth
          : max_backoff;
  random = std::clamp(random, 0.0, 1.0);
  return base * (1 - jitter + 2 * jitter * random);
}

}  // namespace rio
