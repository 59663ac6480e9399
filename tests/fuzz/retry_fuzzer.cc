// Retry schedules from handler settings and Retry-After headers from
// receivers (server/dispatch/retry_policy.h), and the policy built on them.
//
// Invariants: a parsed schedule has one finite, positive delay per
// comma-separated item; a Retry-After delay is never negative, and
// delay-seconds are taken as written; the policy never schedules a retry
// before now, and honours Retry-After up to its cap.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/dispatch/retry_policy.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using rio::dispatch::AttemptResult;
using rio::dispatch::Decision;
using rio::dispatch::RetryPolicy;
using rio::dispatch::Verdict;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);  // 2026-01-01

void CheckRetryAfter(absl::string_view value) {
  const std::optional<absl::Duration> delay =
      rio::dispatch::ParseRetryAfter(value, kNow);
  if (!delay) return;
  FUZZ_CHECK(*delay >= absl::ZeroDuration());
  const absl::string_view trimmed = absl::StripAsciiWhitespace(value);
  int64_t seconds;
  if (!trimmed.empty() && trimmed[0] != '+' && trimmed[0] != '-' &&
      absl::SimpleAtoi(trimmed, &seconds)) {
    FUZZ_CHECK(*delay == absl::Seconds(seconds));
  }
}

void CheckPolicy(const std::vector<absl::Duration>& schedule,
                 FuzzedDataProvider& provider) {
  const double jitter = provider.ConsumeFloatingPoint<double>();
  const absl::Duration cap =
      absl::Seconds(provider.ConsumeIntegralInRange<int64_t>(0, 86400));
  const RetryPolicy policy(schedule, cap, jitter);
  FUZZ_CHECK(policy.max_attempts() == static_cast<int>(schedule.size()) + 1);

  AttemptResult result;
  result.curl_code =
      provider.ConsumeBool()
          ? CURLE_OK
          : static_cast<CURLcode>(provider.ConsumeIntegralInRange<int>(1, 100));
  result.http_status = provider.ConsumeIntegralInRange<int>(0, 999);
  if (provider.ConsumeBool()) {
    result.retry_after = rio::dispatch::ParseRetryAfter(
        provider.ConsumeRandomLengthString(64), kNow);
  }
  const int attempts_done = provider.ConsumeIntegralInRange<int>(1, 1000);
  const double rand01 = provider.ConsumeFloatingPoint<double>();

  const absl::Duration delay = policy.Delay(attempts_done, rand01);
  FUZZ_CHECK(delay >= absl::ZeroDuration());
  const Decision decision = policy.Decide(result, attempts_done, kNow, rand01);
  if (decision.verdict == Verdict::kRetry) {
    FUZZ_CHECK(decision.next_attempt_time >= kNow);
    FUZZ_CHECK(attempts_done < policy.max_attempts());
    FUZZ_CHECK(!decision.reason.empty());
    const bool asks_to_wait =
        result.curl_code == CURLE_OK &&
        (result.http_status == 429 || result.http_status == 503);
    if (asks_to_wait && result.retry_after) {
      FUZZ_CHECK(decision.next_attempt_time - kNow >=
                 std::min(*result.retry_after, cap));
    }
  } else {
    FUZZ_CHECK(decision.next_attempt_time == absl::InfiniteFuture());
  }
  if (decision.verdict == Verdict::kSucceeded) {
    FUZZ_CHECK(result.curl_code == CURLE_OK && result.http_status >= 200 &&
               result.http_status <= 299);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  const std::string schedule_text = provider.ConsumeRandomLengthString(1024);
  const absl::StatusOr<std::vector<absl::Duration>> schedule =
      rio::dispatch::ParseRetrySchedule(schedule_text);
  if (schedule.ok()) {
    if (absl::StripAsciiWhitespace(schedule_text).empty()) {
      FUZZ_CHECK(schedule->empty());
    } else {
      const std::vector<absl::string_view> items =
          absl::StrSplit(schedule_text, ',');
      FUZZ_CHECK(schedule->size() == items.size());
    }
    for (const absl::Duration delay : *schedule) {
      FUZZ_CHECK(delay > absl::ZeroDuration());
      FUZZ_CHECK(delay != absl::InfiniteDuration());
    }
    CheckPolicy(*schedule, provider);
  } else {
    FUZZ_CHECK(schedule.status().code() == absl::StatusCode::kInvalidArgument);
  }
  CheckRetryAfter(provider.ConsumeRemainingBytesAsString());
  return 0;
}
