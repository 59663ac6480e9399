#include "server/dispatch/retry_policy.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/dispatch/job.h"

namespace rio::dispatch {
namespace {

using absl::Hours;
using absl::Milliseconds;
using absl::Minutes;
using absl::Seconds;

// rand01 values: no jitter, the low end (-20%), just under the high end.
constexpr double kMiddle = 0.5;
constexpr double kLowest = 0.0;
constexpr double kHighest = 0.999999;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

RetryPolicy DefaultPolicy() {
  return RetryPolicy(*ParseRetrySchedule(kDefaultRetrySchedule));
}

AttemptResult Http(int status,
                   std::optional<absl::Duration> retry_after = std::nullopt) {
  AttemptResult result;
  result.http_status = status;
  result.retry_after = retry_after;
  return result;
}

AttemptResult Curl(CURLcode code) {
  AttemptResult result;
  result.curl_code = code;
  return result;
}

TEST(ParseRetrySchedule, ParsesTheDefaultSchedule) {
  absl::StatusOr<std::vector<absl::Duration>> schedule =
      ParseRetrySchedule(kDefaultRetrySchedule);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(*schedule, (std::vector<absl::Duration>{
                           Seconds(5), Minutes(5), Minutes(30), Hours(2),
                           Hours(5), Hours(10), Hours(10)}));
}

TEST(ParseRetrySchedule, AcceptsUnitsFractionsAndWhitespace) {
  absl::StatusOr<std::vector<absl::Duration>> schedule =
      ParseRetrySchedule(" 100ms ,1.5h,\t5m , 2s,1h30m ");
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(*schedule,
            (std::vector<absl::Duration>{Milliseconds(100), Minutes(90),
                                         Minutes(5), Seconds(2), Minutes(90)}));
}

TEST(ParseRetrySchedule, EmptyTextMeansNoRetries) {
  for (const char* empty : {"", "  ", "\t\n"}) {
    absl::StatusOr<std::vector<absl::Duration>> schedule =
        ParseRetrySchedule(empty);
    ASSERT_TRUE(schedule.ok()) << schedule.status();
    EXPECT_TRUE(schedule->empty());
  }
}

TEST(ParseRetrySchedule, RejectsDelaysBeyondAYearAndTooManyItems) {
  // A delay PostgreSQL's timestamps cannot hold would wedge the outcome
  // writer.
  absl::StatusOr<std::vector<absl::Duration>> schedule =
      ParseRetrySchedule("5s,100000000000h");
  ASSERT_FALSE(schedule.ok());
  EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(schedule.status().message(),
            "retry_schedule item \"100000000000h\" is longer than the limit "
            "of 8760h (365 days)");
  EXPECT_TRUE(ParseRetrySchedule("8760h").ok());

  std::string many = "1s";
  for (int i = 1; i < kMaxRetries; ++i) many += ",1s";
  ASSERT_TRUE(ParseRetrySchedule(many).ok());
  schedule = ParseRetrySchedule(many + ",1s");
  ASSERT_FALSE(schedule.ok());
  EXPECT_EQ(schedule.status().message(),
            "retry_schedule has more than 100 items");
}

TEST(RetryPolicy, AResponseRioRefusedIsAnInvalidResponse) {
  const RetryPolicy policy = DefaultPolicy();
  AttemptResult result;
  result.http_status = 200;
  result.invalid_response = "the response headers exceed 64 KiB";
  const Decision decision = policy.Decide(result, 1, kNow, kMiddle);
  EXPECT_EQ(decision.verdict, Verdict::kRetry);
  EXPECT_EQ(decision.error_class, ErrorClass::kInvalidResponse);
  EXPECT_EQ(decision.reason,
            "invalid_response: the response headers exceed 64 KiB");
}

TEST(RetryPolicy, ARefusedDestinationIsRetriedOnTheSchedule) {
  const RetryPolicy policy = DefaultPolicy();
  AttemptResult result;
  result.curl_code = CURLE_COULDNT_CONNECT;
  result.destination_refused = "127.0.0.1 is loopback (127.0.0.0/8)";
  const Decision decision = policy.Decide(result, 1, kNow, kMiddle);
  EXPECT_EQ(decision.verdict, Verdict::kRetry);
  EXPECT_EQ(decision.next_attempt_time, kNow + absl::Seconds(5));
  EXPECT_EQ(decision.error_class, ErrorClass::kDestinationRefused);
  EXPECT_EQ(decision.reason,
            "destination_refused: 127.0.0.1 is loopback (127.0.0.0/8)");
}

TEST(ParseRetrySchedule, RejectsItemsThatAreNotPositiveDurations) {
  struct Case {
    const char* text;
    const char* item;
  } cases[] = {
      {"0s", "0s"},   {"5s,0", "0"},      {"-5s", "-5s"},
      {"5", "5"},     {"5s,,5m", ""},     {"5s,", ""},
      {"abc", "abc"}, {"5 s", "5 s"},     {"inf", "inf"},
      {"5d", "5d"},   {"5s;5m", "5s;5m"}, {"5s,\"x\"", "\\\"x\\\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<absl::Duration>> schedule =
        ParseRetrySchedule(c.text);
    ASSERT_FALSE(schedule.ok()) << c.text;
    EXPECT_EQ(schedule.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(schedule.status().message(),
              std::string("retry_schedule item \"") + c.item +
                  "\" is not a positive duration (e.g. 5s, 100ms, 2h)")
        << c.text;
  }
}

TEST(ErrorClassName, NamesEveryClass) {
  EXPECT_EQ(ErrorClassName(ErrorClass::kNone), "");
  EXPECT_EQ(ErrorClassName(ErrorClass::kTimeout), "timeout");
  EXPECT_EQ(ErrorClassName(ErrorClass::kConnect), "connect");
  EXPECT_EQ(ErrorClassName(ErrorClass::kDns), "dns");
  EXPECT_EQ(ErrorClassName(ErrorClass::kTls), "tls");
  EXPECT_EQ(ErrorClassName(ErrorClass::kHttpStatus), "http_status");
  EXPECT_EQ(ErrorClassName(ErrorClass::kInvalidTarget), "invalid_target");
  EXPECT_EQ(ErrorClassName(ErrorClass::kInvalidResponse), "invalid_response");
  EXPECT_EQ(ErrorClassName(ErrorClass::kConnectionLost), "connection_lost");
  EXPECT_EQ(ErrorClassName(ErrorClass::kInternalError), "internal_error");
  EXPECT_EQ(ErrorClassName(ErrorClass::kDestinationRefused),
            "destination_refused");
}

TEST(ClassifyCurlError, MapsCurlCodesToClasses) {
  EXPECT_EQ(ClassifyCurlError(CURLE_OK), ErrorClass::kNone);
  EXPECT_EQ(ClassifyCurlError(CURLE_OPERATION_TIMEDOUT), ErrorClass::kTimeout);
  for (CURLcode code : {CURLE_COULDNT_CONNECT, CURLE_PROXY}) {
    EXPECT_EQ(ClassifyCurlError(code), ErrorClass::kConnect) << code;
  }
  for (CURLcode code : {CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING,
                        CURLE_PARTIAL_FILE}) {
    EXPECT_EQ(ClassifyCurlError(code), ErrorClass::kConnectionLost) << code;
  }
  for (CURLcode code : {CURLE_WEIRD_SERVER_REPLY, CURLE_BAD_CONTENT_ENCODING,
                        CURLE_HTTP2, CURLE_HTTP2_STREAM}) {
    EXPECT_EQ(ClassifyCurlError(code), ErrorClass::kInvalidResponse) << code;
  }
  EXPECT_EQ(ClassifyCurlError(CURLE_COULDNT_RESOLVE_HOST), ErrorClass::kDns);
  EXPECT_EQ(ClassifyCurlError(CURLE_COULDNT_RESOLVE_PROXY), ErrorClass::kDns);
  for (CURLcode code :
       {CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION,
        CURLE_USE_SSL_FAILED, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
        CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
        CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
        CURLE_SSL_CLIENTCERT, CURLE_SSL_SHUTDOWN_FAILED}) {
    EXPECT_EQ(ClassifyCurlError(code), ErrorClass::kTls) << code;
  }
  for (CURLcode code : {CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT,
                        CURLE_TOO_MANY_REDIRECTS}) {
    EXPECT_EQ(ClassifyCurlError(code), ErrorClass::kInvalidTarget) << code;
  }
  // Anything else.
  EXPECT_EQ(ClassifyCurlError(CURLE_OUT_OF_MEMORY), ErrorClass::kConnect);
  EXPECT_EQ(ClassifyCurlError(CURLE_ABORTED_BY_CALLBACK), ErrorClass::kConnect);
}

// 2015-10-21 07:28:00 UTC, the date in RFC 9110's examples.
const absl::Time kOctober21 = absl::FromUnixSeconds(1445412480);

TEST(ParseRetryAfter, ParsesDelaySeconds) {
  EXPECT_EQ(ParseRetryAfter("120", kNow), Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", kNow), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("0007", kNow), Seconds(7));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", kNow),
            absl::InfiniteDuration());
}

TEST(ParseRetryAfter, ParsesHttpDatesAgainstNow) {
  const absl::Time now = kOctober21 - Seconds(90);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), Seconds(90));
  EXPECT_EQ(ParseRetryAfter("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            Seconds(90));
  EXPECT_EQ(ParseRetryAfter("Wed Oct 21 07:28:00 2015", now), Seconds(90));
  EXPECT_EQ(ParseRetryAfter("Thu, 22 Oct 2015 07:28:00 GMT", now),
            Hours(24) + Seconds(90));
}

TEST(ParseRetryAfter, PastDateGivesZero) {
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", kNow),
            absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", kOctober21),
            absl::ZeroDuration());
}

TEST(ParseRetryAfter, RejectsGarbage) {
  for (const char* bad :
       {"", "  ", "-1", "+5", "1.5", "5s", "soon", "120 seconds",
        "Wed, 21 Oct 2015 07:28:00 PST", "Wed, 21 Oct 2015 07:28:00",
        "Wed, 21 Oct 2015 07:28:00 GMT x", "Wed, 32 Oct 2015 07:28:00 GMT",
        "2015-10-21T07:28:00Z"}) {
    EXPECT_EQ(ParseRetryAfter(bad, kNow), std::nullopt) << bad;
  }
}

TEST(Decision, DefaultsToAFailureThatIsNeverRetried) {
  const Decision decision;
  EXPECT_EQ(decision.verdict, Verdict::kFailed);
  EXPECT_EQ(decision.next_attempt_time, absl::InfiniteFuture());
  EXPECT_EQ(decision.error_class, ErrorClass::kNone);
  EXPECT_EQ(decision.reason, "");
}

TEST(RetryPolicy, DefaultScheduleAllowsEightAttempts) {
  EXPECT_EQ(DefaultPolicy().max_attempts(), 8);
  EXPECT_EQ(RetryPolicy({}).max_attempts(), 1);
}

TEST(RetryPolicy, DelayFollowsTheScheduleWithJitter) {
  const RetryPolicy policy = DefaultPolicy();
  EXPECT_EQ(policy.Delay(1, kMiddle), Seconds(5));
  EXPECT_EQ(policy.Delay(2, kMiddle), Minutes(5));
  EXPECT_EQ(policy.Delay(7, kMiddle), Hours(10));
  EXPECT_EQ(policy.Delay(1, kLowest), Seconds(4));
  EXPECT_EQ(policy.Delay(2, kLowest), Minutes(4));
  EXPECT_EQ(policy.Delay(4, kLowest), Minutes(96));
  // 30 min * (1 + 0.2 * (2 * 0.999999 - 1)) = 2159.99928 s.
  EXPECT_EQ(policy.Delay(3, kHighest),
            Milliseconds(2159999) + absl::Microseconds(280));
  EXPECT_LT(policy.Delay(3, kHighest), Minutes(36));
  EXPECT_EQ(policy.Delay(3, 0.75), Minutes(33));
}

TEST(RetryPolicy, DelayStaysWithinTheJitterBand) {
  const RetryPolicy policy = DefaultPolicy();
  for (int i = 0; i < 1000; ++i) {
    const double rand01 = i / 1000.0;
    const absl::Duration delay = policy.Delay(2, rand01);
    EXPECT_GE(delay, Minutes(4)) << rand01;
    EXPECT_LT(delay, Minutes(6)) << rand01;
  }
}

TEST(RetryPolicy, DelayClampsAttemptsAndRandomness) {
  const RetryPolicy policy = DefaultPolicy();
  EXPECT_EQ(policy.Delay(0, kMiddle), Seconds(5));
  EXPECT_EQ(policy.Delay(8, kMiddle), Hours(10));
  EXPECT_EQ(policy.Delay(100, kMiddle), Hours(10));
  EXPECT_EQ(policy.Delay(1, -3.0), Seconds(4));
  EXPECT_EQ(policy.Delay(1, 7.0), Seconds(6));
  EXPECT_EQ(policy.Delay(1, std::numeric_limits<double>::quiet_NaN()),
            Seconds(4));
  EXPECT_EQ(RetryPolicy({}).Delay(1, kMiddle), absl::ZeroDuration());
}

TEST(RetryPolicy, ZeroJitterIgnoresRandomness) {
  const RetryPolicy policy({Seconds(10)}, Hours(1), /*jitter=*/0.0);
  EXPECT_EQ(policy.Delay(1, kLowest), Seconds(10));
  EXPECT_EQ(policy.Delay(1, kHighest), Seconds(10));
}

TEST(RetryPolicy, SucceedsOn2xx) {
  for (int status : {200, 201, 204, 299}) {
    const Decision decision = DefaultPolicy().Decide(Http(status), 1, kNow, 0);
    EXPECT_EQ(decision.verdict, Verdict::kSucceeded) << status;
    EXPECT_EQ(decision.error_class, ErrorClass::kNone);
    EXPECT_EQ(decision.reason, "");
    EXPECT_EQ(decision.next_attempt_time, absl::InfiniteFuture());
  }
  // Even on the last attempt.
  EXPECT_EQ(DefaultPolicy().Decide(Http(200), 8, kNow, 0).verdict,
            Verdict::kSucceeded);
}

TEST(RetryPolicy, GoneDisablesTheHandlerOnAnyAttempt) {
  for (int attempt : {1, 4, 8}) {
    const Decision decision =
        DefaultPolicy().Decide(Http(410), attempt, kNow, kMiddle);
    EXPECT_EQ(decision.verdict, Verdict::kFailedAndDisable) << attempt;
    EXPECT_EQ(decision.error_class, ErrorClass::kHttpStatus);
    EXPECT_EQ(decision.reason, "the receiver answered 410 Gone");
    EXPECT_EQ(decision.next_attempt_time, absl::InfiniteFuture());
  }
}

TEST(RetryPolicy, RetriesOtherStatusesPerSchedule) {
  const RetryPolicy policy = DefaultPolicy();
  for (int status : {100, 199, 301, 304, 400, 401, 404, 500, 502, 504}) {
    const Decision decision = policy.Decide(Http(status), 1, kNow, kMiddle);
    EXPECT_EQ(decision.verdict, Verdict::kRetry) << status;
    EXPECT_EQ(decision.error_class, ErrorClass::kHttpStatus);
    EXPECT_EQ(decision.reason, "HTTP " + std::to_string(status));
    EXPECT_EQ(decision.next_attempt_time, kNow + Seconds(5));
  }
  EXPECT_EQ(policy.Decide(Http(500), 2, kNow, kLowest).next_attempt_time,
            kNow + Minutes(4));
  EXPECT_EQ(policy.Decide(Http(500), 7, kNow, kMiddle).next_attempt_time,
            kNow + Hours(10));
}

TEST(RetryPolicy, GivesUpAfterTheLastAttempt) {
  const Decision decision = DefaultPolicy().Decide(Http(500), 8, kNow, kMiddle);
  EXPECT_EQ(decision.verdict, Verdict::kFailed);
  EXPECT_EQ(decision.error_class, ErrorClass::kHttpStatus);
  EXPECT_EQ(decision.reason, "gave up after 8 attempts: HTTP 500");
  EXPECT_EQ(decision.next_attempt_time, absl::InfiniteFuture());

  const Decision timeout =
      DefaultPolicy().Decide(Curl(CURLE_OPERATION_TIMEDOUT), 9, kNow, kMiddle);
  EXPECT_EQ(timeout.verdict, Verdict::kFailed);
  EXPECT_EQ(timeout.reason,
            "gave up after 9 attempts: timeout: Timeout was reached");

  const Decision only = RetryPolicy({}).Decide(Http(503), 1, kNow, kMiddle);
  EXPECT_EQ(only.verdict, Verdict::kFailed);
  EXPECT_EQ(only.reason, "gave up after 1 attempt: HTTP 503");
}

TEST(RetryPolicy, ClassifiesCurlFailures) {
  const RetryPolicy policy = DefaultPolicy();
  struct Case {
    CURLcode code;
    ErrorClass error_class;
  } cases[] = {
      {CURLE_OPERATION_TIMEDOUT, ErrorClass::kTimeout},
      {CURLE_COULDNT_CONNECT, ErrorClass::kConnect},
      {CURLE_COULDNT_RESOLVE_HOST, ErrorClass::kDns},
      {CURLE_PEER_FAILED_VERIFICATION, ErrorClass::kTls},
      {CURLE_URL_MALFORMAT, ErrorClass::kInvalidTarget},
  };
  for (const Case& c : cases) {
    const Decision decision = policy.Decide(Curl(c.code), 1, kNow, kMiddle);
    EXPECT_EQ(decision.verdict, Verdict::kRetry) << c.code;
    EXPECT_EQ(decision.error_class, c.error_class) << c.code;
    EXPECT_EQ(decision.reason, std::string(ErrorClassName(c.error_class)) +
                                   ": " + curl_easy_strerror(c.code));
    EXPECT_EQ(decision.next_attempt_time, kNow + Seconds(5));
  }
  EXPECT_EQ(policy.Decide(Curl(CURLE_OPERATION_TIMEDOUT), 1, kNow, 0).reason,
            "timeout: Timeout was reached");
}

TEST(RetryPolicy, CurlFailureWinsOverAStatusAlreadyReceived) {
  // E.g. the connection dropped in the middle of a 200 response.
  AttemptResult result = Http(200);
  result.curl_code = CURLE_PARTIAL_FILE;
  const Decision decision = DefaultPolicy().Decide(result, 1, kNow, kMiddle);
  EXPECT_EQ(decision.verdict, Verdict::kRetry);
  EXPECT_EQ(decision.error_class, ErrorClass::kConnectionLost);

  result = Http(410);
  result.curl_code = CURLE_RECV_ERROR;
  EXPECT_EQ(DefaultPolicy().Decide(result, 1, kNow, kMiddle).verdict,
            Verdict::kRetry);
}

TEST(RetryPolicy, HonoursRetryAfterOn429And503) {
  const RetryPolicy policy = DefaultPolicy();
  EXPECT_EQ(
      policy.Decide(Http(429, Minutes(2)), 1, kNow, kMiddle).next_attempt_time,
      kNow + Minutes(2));
  EXPECT_EQ(
      policy.Decide(Http(503, Minutes(2)), 1, kNow, kMiddle).next_attempt_time,
      kNow + Minutes(2));
  // Never sooner than the schedule.
  EXPECT_EQ(
      policy.Decide(Http(429, Seconds(1)), 2, kNow, kMiddle).next_attempt_time,
      kNow + Minutes(5));
  EXPECT_EQ(policy.Decide(Http(503, absl::ZeroDuration()), 1, kNow, kLowest)
                .next_attempt_time,
            kNow + Seconds(4));
  // No header: the schedule alone.
  EXPECT_EQ(policy.Decide(Http(429), 1, kNow, kMiddle).next_attempt_time,
            kNow + Seconds(5));
  // Other statuses do not get to set the pace.
  EXPECT_EQ(
      policy.Decide(Http(500, Minutes(2)), 1, kNow, kMiddle).next_attempt_time,
      kNow + Seconds(5));
  EXPECT_EQ(
      policy.Decide(Http(502, Minutes(2)), 1, kNow, kMiddle).next_attempt_time,
      kNow + Seconds(5));
}

TEST(RetryPolicy, CapsRetryAfter) {
  EXPECT_EQ(DefaultPolicy()
                .Decide(Http(503, Hours(10)), 1, kNow, kMiddle)
                .next_attempt_time,
            kNow + Hours(1));
  EXPECT_EQ(DefaultPolicy()
                .Decide(Http(429, absl::InfiniteDuration()), 1, kNow, kMiddle)
                .next_attempt_time,
            kNow + Hours(1));
  const RetryPolicy short_cap({Seconds(5), Hours(2)}, Minutes(10));
  EXPECT_EQ(
      short_cap.Decide(Http(429, Hours(1)), 1, kNow, kMiddle).next_attempt_time,
      kNow + Minutes(10));
  // A cap below the schedule never shortens the schedule.
  EXPECT_EQ(
      short_cap.Decide(Http(429, Hours(1)), 2, kNow, kMiddle).next_attempt_time,
      kNow + Hours(2));
}

TEST(RetryPolicy, RetryAfterDoesNotExtendTheAttemptCount) {
  const Decision decision =
      DefaultPolicy().Decide(Http(429, Minutes(2)), 8, kNow, kMiddle);
  EXPECT_EQ(decision.verdict, Verdict::kFailed);
  EXPECT_EQ(decision.reason, "gave up after 8 attempts: HTTP 429");
}

}  // namespace
TEST(StatusAfter, NamesTheStatusAnOutcomeLeavesAndItsStoredForm) {
  AttemptOutcome o;
  o.decision.verdict = Verdict::kSucceeded;
  EXPECT_EQ(v1::Delivery::Status_Name(StatusAfter(o)), "SUCCEEDED");
  o.decision.verdict = Verdict::kRetry;
  EXPECT_EQ(v1::Delivery::Status_Name(StatusAfter(o)), "PENDING");
  o.decision.verdict = Verdict::kFailed;
  EXPECT_EQ(v1::Delivery::Status_Name(StatusAfter(o)), "FAILED");
  o.decision.verdict = Verdict::kFailedAndDisable;
  EXPECT_EQ(v1::Delivery::Status_Name(StatusAfter(o)), "FAILED");
  o.cancelled = true;
  EXPECT_EQ(v1::Delivery::Status_Name(StatusAfter(o)), "CANCELLED");
}

}  // namespace rio::dispatch
