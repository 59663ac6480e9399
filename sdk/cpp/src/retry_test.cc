#include "rio/retry.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sdk/cpp/tests/status_matchers.h"

namespace rio {
namespace {

using ::rio::testing::IsOk;
using ::rio::testing::StatusIs;
using ::testing::HasSubstr;

TEST(RetryPolicy, DefaultsMatchTheOtherSdks) {
  const RetryPolicy policy;
  EXPECT_EQ(policy.max_attempts, 5);
  EXPECT_EQ(policy.initial_backoff, absl::Milliseconds(100));
  EXPECT_EQ(policy.max_backoff, absl::Seconds(5));
  EXPECT_EQ(policy.multiplier, 2.0);
  EXPECT_EQ(policy.jitter, 0.2);
  EXPECT_THAT(policy.Validate(), IsOk());
}

TEST(RetryPolicy, BackoffGrowsExponentiallyUpToTheMaximum) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Milliseconds(100);
  policy.multiplier = 2;
  policy.max_backoff = absl::Seconds(1);
  policy.jitter = 0;
  std::vector<absl::Duration> backoffs;
  for (int retry = 1; retry <= 6; ++retry) {
    backoffs.push_back(policy.Backoff(retry, 0.5));
  }
  EXPECT_THAT(backoffs, ::testing::ElementsAre(
                            absl::Milliseconds(100), absl::Milliseconds(200),
                            absl::Milliseconds(400), absl::Milliseconds(800),
                            absl::Seconds(1), absl::Seconds(1)));
  // Far beyond the cap, pow() overflows; the cap still holds.
  EXPECT_EQ(policy.Backoff(5000, 0.5), absl::Seconds(1));
}

TEST(RetryPolicy, JitterStaysWithinItsBounds) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Seconds(1);
  policy.jitter = 0.2;
  EXPECT_EQ(policy.Backoff(1, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(policy.Backoff(1, 1.0), absl::Milliseconds(1200));
  EXPECT_EQ(policy.Backoff(1, 0.5), absl::Seconds(1));
}

TEST(RetryPolicy, OnlyTransientCodesAreRetriedAndAttemptsAreBounded) {
  const RetryPolicy policy;
  EXPECT_TRUE(policy.ShouldRetry(absl::StatusCode::kUnavailable, 1));
  EXPECT_TRUE(policy.ShouldRetry(absl::StatusCode::kDeadlineExceeded, 4));
  EXPECT_FALSE(policy.ShouldRetry(absl::StatusCode::kUnavailable, 5));
  for (absl::StatusCode code :
       {absl::StatusCode::kUnauthenticated, absl::StatusCode::kInvalidArgument,
        absl::StatusCode::kPermissionDenied, absl::StatusCode::kInternal,
        absl::StatusCode::kResourceExhausted}) {
    EXPECT_FALSE(policy.ShouldRetry(code, 1)) << code;
  }
  EXPECT_FALSE(
      RetryPolicy::NoRetry().ShouldRetry(absl::StatusCode::kUnavailable, 1));
}

TEST(RetryPolicy, NonsensePoliciesAreRefused) {
  RetryPolicy zero_attempts;
  zero_attempts.max_attempts = 0;
  EXPECT_THAT(
      zero_attempts.Validate(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_attempts")));
  RetryPolicy negative;
  negative.initial_backoff = absl::Seconds(-1);
  EXPECT_THAT(negative.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("negative")));
  RetryPolicy shrinking;
  shrinking.multiplier = 0.5;
  EXPECT_THAT(shrinking.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("multiplier")));
  RetryPolicy wild;
  wild.jitter = 2;
  EXPECT_THAT(wild.Validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("jitter")));
}

}  // namespace
}  // namespace rio
