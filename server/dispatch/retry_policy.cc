#include "server/dispatch/retry_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rio::dispatch {
namespace {

// NaN and out-of-range values are clamped rather than trusted, so a bad
// random source cannot produce a negative or NaN delay.
double ClampUnit(double x) {
  if (!(x >= 0.0)) return 0.0;
  return std::min(x, 1.0);
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

}  // namespace

absl::StatusOr<std::vector<absl::Duration>> ParseRetrySchedule(
    absl::string_view text) {
  std::vector<absl::Duration> schedule;
  if (absl::StripAsciiWhitespace(text).empty()) return schedule;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    if (schedule.size() == kMaxRetries) {
      return absl::InvalidArgumentError(
          absl::StrCat("retry_schedule has more than ", kMaxRetries, " items"));
    }
    item = absl::StripAsciiWhitespace(item);
    absl::Duration delay;
    if (!absl::ParseDuration(item, &delay) || delay <= absl::ZeroDuration() ||
        delay == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "retry_schedule item \"", absl::CHexEscape(item.substr(0, 64)),
          "\" is not a positive duration (e.g. 5s, 100ms, 2h)"));
    }
    if (delay > kMaxRetryDelay) {
      return absl::InvalidArgumentError(absl::StrCat(
          "retry_schedule item \"", absl::CHexEscape(item.substr(0, 64)),
          "\" is longer than the limit of ",
          absl::FormatDuration(kMaxRetryDelay), " (365 days)"));
    }
    schedule.push_back(delay);
  }
  return schedule;
}

absl::string_view ErrorClassName(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::kNone:
      return "";
    case ErrorClass::kTimeout:
      return "timeout";
    case ErrorClass::kConnect:
      return "connect";
    case ErrorClass::kDns:
      return "dns";
    case ErrorClass::kTls:
      return "tls";
    case ErrorClass::kHttpStatus:
      return "http_status";
    case ErrorClass::kInvalidTarget:
      return "invalid_target";
    case ErrorClass::kInvalidResponse:
      return "invalid_response";
    case ErrorClass::kConnectionLost:
      return "connection_lost";
    case ErrorClass::kInternalError:
      return "internal_error";
    case ErrorClass::kDestinationRefused:
      return "destination_refused";
  }
  return "";
}

ErrorClass ClassifyCurlError(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return ErrorClass::kNone;
    case CURLE_OPERATION_TIMEDOUT:
      return ErrorClass::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return ErrorClass::kDns;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return ErrorClass::kTls;
    // The URL itself is at fault: no retry of the same URL can succeed, but
    // the schedule still applies because the handler may be edited.
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
      return ErrorClass::kInvalidTarget;
    // A connection was made and broke: reset, closed early or cut short.
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return ErrorClass::kConnectionLost;
    // What came back is not a response curl could read.
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return ErrorClass::kInvalidResponse;
    // Listed for the reader; the default says the same: no connection, or
    // a failure with no better class.
    case CURLE_COULDNT_CONNECT:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_PROXY:
    default:
      return ErrorClass::kConnect;
  }
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (AllDigits(value)) {
    int64_t seconds;
    // Only an overflow fails here; such a delay is as good as forever.
    if (!absl::SimpleAtoi(value, &seconds)) return absl::InfiniteDuration();
    return absl::Seconds(seconds);
  }
  // IMF-fixdate first (what senders must generate), then the obsolete RFC 850
  // and asctime forms.
  static constexpr const char* kHttpDateFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",
      "%A, %d-%b-%y %H:%M:%S GMT",
      "%a %b %e %H:%M:%S %Y",
  };
  for (const char* format : kHttpDateFormats) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, value, absl::UTCTimeZone(), &when, &error)) {
      return std::max(when - now, absl::ZeroDuration());
    }
  }
  return std::nullopt;
}

RetryPolicy::RetryPolicy(std::vector<absl::Duration> schedule,
                         absl::Duration max_retry_after, double jitter)
    : schedule_(std::move(schedule)),
      max_retry_after_(max_retry_after),
      jitter_(ClampUnit(jitter)) {}

absl::Duration RetryPolicy::Delay(int attempts_done, double rand01) const {
  if (schedule_.empty()) return absl::ZeroDuration();
  const int index =
      std::clamp(attempts_done, 1, static_cast<int>(schedule_.size())) - 1;
  const double factor = 1.0 + jitter_ * (2.0 * ClampUnit(rand01) - 1.0);
  // Rounding in nanoseconds keeps exact results exact (5s * 0.8 is 4s, not
  // 3.999999999s); doubles hold nanoseconds exactly for over 100 days.
  return absl::Nanoseconds(
      std::round(absl::ToDoubleNanoseconds(schedule_[index]) * factor));
}

Decision RetryPolicy::Decide(const AttemptResult& result, int attempts_done,
                             absl::Time now, double rand01) const {
  ErrorClass error_class;
  std::string reason;
  if (!result.destination_refused.empty()) {
    error_class = ErrorClass::kDestinationRefused;
    reason = absl::StrCat("destination_refused: ", result.destination_refused);
  } else if (!result.invalid_response.empty()) {
    error_class = ErrorClass::kInvalidResponse;
    reason = absl::StrCat("invalid_response: ", result.invalid_response);
  } else if (result.curl_code == CURLE_OK) {
    if (result.http_status >= 200 && result.http_status <= 299) {
      return {Verdict::kSucceeded, absl::InfiniteFuture(), ErrorClass::kNone,
              ""};
    }
    if (result.http_status == 410) {
      return {Verdict::kFailedAndDisable, absl::InfiniteFuture(),
              ErrorClass::kHttpStatus, "the receiver answered 410 Gone"};
    }
    error_class = ErrorClass::kHttpStatus;
    reason = absl::StrCat("HTTP ", result.http_status);
  } else {
    error_class = ClassifyCurlError(result.curl_code);
    reason = absl::StrCat(ErrorClassName(error_class), ": ",
                          curl_easy_strerror(result.curl_code));
  }

  if (attempts_done >= max_attempts()) {
    return {Verdict::kFailed, absl::InfiniteFuture(), error_class,
            absl::StrCat(
                "gave up after ", attempts_done,
                attempts_done == 1 ? " attempt: " : " attempts: ", reason)};
  }

  absl::Duration wait = Delay(attempts_done, rand01);
  const bool asks_to_wait =
      result.curl_code == CURLE_OK && result.invalid_response.empty() &&
      result.destination_refused.empty() &&
      (result.http_status == 429 || result.http_status == 503);
  if (asks_to_wait && result.retry_after.has_value()) {
    // Honour the receiver's wish, but never sooner than the schedule and
    // never longer than the cap.
    wait = std::max(wait, std::min(*result.retry_after, max_retry_after_));
  }
  return {Verdict::kRetry, now + wait, error_class, std::move(reason)};
}

}  // namespace rio::dispatch
