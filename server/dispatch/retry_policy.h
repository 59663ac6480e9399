// What happens after one delivery attempt: success, a retry at a computed
// time, or giving up (see DESIGN.md, "What a receiver gets"). Converts curl
// codes and HTTP statuses into Rio's error classes, once, at this edge.
//
// Everything here is pure: time and randomness come from the caller, so the
// policy is tested without sleeping. RetryPolicy is immutable after
// construction and safe to share between threads.
#ifndef RIO_SERVER_DISPATCH_RETRY_POLICY_H_
#define RIO_SERVER_DISPATCH_RETRY_POLICY_H_

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rio::dispatch {

// The delays between attempts when a handler sets none: the first attempt is
// immediate, then 7 retries, so 8 attempts in all over about 28 hours.
inline constexpr absl::string_view kDefaultRetrySchedule =
    "5s,5m,30m,2h,5h,10h,10h";

// Parses a comma-separated list of delays ("5s, 5m, 1.5h, 100ms"; any unit
// absl::ParseDuration knows). Whitespace around items is ignored; empty (or
// all-whitespace) text means no retries. INVALID_ARGUMENT names the first item
// that is not a duration > 0 and at most kMaxRetryDelay, or says that there
// are more than kMaxRetries items.
inline constexpr absl::Duration kMaxRetryDelay = absl::Hours(24 * 365);
inline constexpr int kMaxRetries = 100;
absl::StatusOr<std::vector<absl::Duration>> ParseRetrySchedule(
    absl::string_view text);

// Why an attempt failed, as recorded on the attempt row.
enum class ErrorClass {
  kNone,
  kTimeout,
  kConnect,
  kDns,
  kTls,
  kHttpStatus,
  kInvalidTarget,
  // The reply was not acceptable HTTP: not HTTP at all, a header block over
  // Rio's limits, endless interim (1xx) responses, a broken encoding.
  kInvalidResponse,
  // The connection broke after it was made: reset, closed early, nothing
  // received, a body cut short.
  kConnectionLost,
  // The attempt was made but Rio could not record it as it was (the
  // database refused the row); recorded without the receiver's reply.
  kInternalError,
  // Rio refused to connect: the address is one the egress guard refuses
  // (--egress, --egress_deny), or the URL is http:// under --https_only.
  kDestinationRefused,
  kLast = kDestinationRefused,
};

// "" for kNone, else "timeout", "connect", "dns", "tls", "http_status",
// "invalid_target", "invalid_response", "connection_lost",
// "internal_error" or "destination_refused".
absl::string_view ErrorClassName(ErrorClass error_class);

// kNone for CURLE_OK. Codes with no better class are kConnect: the transfer
// failed somewhere between us and the receiver, and a retry may help.
ErrorClass ClassifyCurlError(CURLcode code);

// A Retry-After header value (RFC 9110 section 10.2.3): delay-seconds, or an
// HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms that
// recipients must accept), interpreted against `now`. A date in the past gives
// zero; absurdly large delay-seconds give absl::InfiniteDuration(). nullopt if
// the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now);

// The outcome of one HTTP attempt as curl reported it.
struct AttemptResult {
  CURLcode curl_code = CURLE_OK;
  int http_status = 0;  // Meaningful when curl_code is CURLE_OK.
  std::optional<absl::Duration> retry_after;  // From a Retry-After header.
  // Set when Rio itself refused the reply (ErrorClass::kInvalidResponse,
  // whatever curl_code and http_status say): why, for the reason.
  std::string invalid_response;
  // Set when Rio refused the destination (ErrorClass::kDestinationRefused):
  // the address or URL and the rule.
  std::string destination_refused;
};

enum class Verdict {
  kSucceeded,
  kRetry,             // Try again at Decision::next_attempt_time.
  kFailed,            // Attempts exhausted.
  kFailedAndDisable,  // The receiver said 410 Gone: disable the handler.
};

// Defaults describe a failure with no cause, so that a Decision filled in
// field by field (or not at all) never reads as a success or loops forever.
struct Decision {
  Verdict verdict = Verdict::kFailed;
  // When to try again; absl::InfiniteFuture() unless verdict is kRetry.
  absl::Time next_attempt_time = absl::InfiniteFuture();
  ErrorClass error_class = ErrorClass::kNone;
  // Human-readable cause ("HTTP 500", "timeout: Timeout was reached"); empty
  // on success.
  std::string reason;
};

// Decides retries for one handler from its schedule: attempt n+1 follows
// attempt n after schedule[n-1], scaled by a random factor in
// [1 - jitter, 1 + jitter) so that deliveries failed together spread out.
class RetryPolicy {
 public:
  // REQUIRES: every item of `schedule` > 0; 0 <= jitter <= 1 (clamped).
  explicit RetryPolicy(std::vector<absl::Duration> schedule,
                       absl::Duration max_retry_after = absl::Hours(1),
                       double jitter = 0.2);

  // `attempts_done` counts the attempt just made (1 = the first). `rand01` is
  // uniform in [0, 1), drawn by the caller so that tests are deterministic.
  //
  // 2xx succeeds and 410 disables the handler, whatever the attempt count.
  // Anything else (a curl error, or any other status: 1xx, 3xx, 4xx, 5xx) is
  // retried after Delay(), unless this was attempt max_attempts(). A 429 or
  // 503 with Retry-After waits at least that long, capped at max_retry_after
  // so that a receiver cannot park a delivery indefinitely.
  Decision Decide(const AttemptResult& result, int attempts_done,
                  absl::Time now, double rand01) const;

  // The first attempt plus one per schedule item.
  int max_attempts() const { return static_cast<int>(schedule_.size()) + 1; }

  // The delay before attempt attempts_done + 1 under the schedule alone,
  // jittered and rounded to the nanosecond. `attempts_done` is clamped to the
  // schedule (beyond it, the last item repeats); an empty schedule gives zero.
  absl::Duration Delay(int attempts_done, double rand01) const;

 private:
  const std::vector<absl::Duration> schedule_;
  const absl::Duration max_retry_after_;
  const double jitter_;
};

}  // namespace rio::dispatch

#endif  // RIO_SERVER_DISPATCH_RETRY_POLICY_H_
