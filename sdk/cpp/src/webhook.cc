#include "rio/webhook.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "internal.h"

namespace rio::webhook {
namespace {

using client_internal::Base64Decode;
using client_internal::Base64Encode;
using client_internal::ConstantTimeEquals;
using client_internal::HmacSha256;

constexpr absl::string_view kSecretPrefix = "whsec_";
// Unix seconds have 10 digits until the year 2286; int64 has 19.
constexpr size_t kMaxTimestampDigits = 19;

absl::StatusOr<std::string> KeyOf(absl::string_view secret) {
  absl::ConsumePrefix(&secret, kSecretPrefix);
  std::optional<std::string> key = Base64Decode(secret);
  if (!key.has_value()) {
    return absl::InvalidArgumentError(
        "the webhook secret is not base64 after 'whsec_'");
  }
  if (key->empty()) {
    return absl::InvalidArgumentError("the webhook secret is empty");
  }
  return *std::move(key);
}

// base64(HMAC-SHA256(key, "id.timestamp.body")).
std::string Signature(absl::string_view key, absl::string_view message_id,
                      absl::string_view timestamp, absl::string_view body) {
  return Base64Encode(
      HmacSha256(key, absl::StrCat(message_id, ".", timestamp, ".", body)));
}

template <typename Pairs>
std::optional<std::string> FindIgnoringCase(const Pairs& pairs,
                                            absl::string_view name) {
  for (const auto& [key, value] : pairs) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

}  // namespace

Headers::Headers(const std::map<std::string, std::string>& headers)
    : lookup_([&headers](absl::string_view name) {
        return FindIgnoringCase(headers, name);
      }) {}

Headers::Headers(
    const std::vector<std::pair<std::string, std::string>>& headers)
    : lookup_([&headers](absl::string_view name) {
        return FindIgnoringCase(headers, name);
      }) {}

std::optional<std::string> Headers::Get(absl::string_view name) const {
  if (!lookup_) return std::nullopt;
  return lookup_(name);
}

absl::Status Verify(absl::string_view secret, const Headers& headers,
                    absl::string_view body, absl::Time now,
                    absl::Duration tolerance) {
  const std::string secrets[] = {std::string(secret)};
  return Verify(absl::MakeConstSpan(secrets), headers, body, now, tolerance);
}

absl::Status Verify(absl::Span<const std::string> secrets,
                    const Headers& headers, absl::string_view body,
                    absl::Time now, absl::Duration tolerance) {
  if (secrets.empty()) {
    return absl::InvalidArgumentError("no webhook secret given");
  }
  std::vector<std::string> keys;
  for (const std::string& secret : secrets) {
    RIO_CLIENT_ASSIGN_OR_RETURN(std::string key, KeyOf(secret));
    keys.push_back(std::move(key));
  }

  const std::optional<std::string> message_id = headers.Get("webhook-id");
  const std::optional<std::string> timestamp = headers.Get("webhook-timestamp");
  const std::optional<std::string> signatures =
      headers.Get("webhook-signature");
  for (const auto& [name, value] :
       {std::pair{"webhook-id", &message_id},
        std::pair{"webhook-timestamp", &timestamp},
        std::pair{"webhook-signature", &signatures}}) {
    if (!value->has_value() || (*value)->empty()) {
      return absl::UnauthenticatedError(
          absl::StrCat("missing ", name, " header"));
    }
  }

  const absl::string_view seconds_text = absl::StripAsciiWhitespace(*timestamp);
  int64_t seconds = 0;
  if (seconds_text.empty() || seconds_text.size() > kMaxTimestampDigits ||
      !std::all_of(seconds_text.begin(), seconds_text.end(),
                   absl::ascii_isdigit) ||
      !absl::SimpleAtoi(seconds_text, &seconds)) {
    return absl::UnauthenticatedError("webhook-timestamp is not unix seconds");
  }
  // absl::Time and Duration saturate (to infinity), never overflow, even at
  // INT64_MAX seconds.
  if (absl::AbsDuration(now - absl::FromUnixSeconds(seconds)) > tolerance) {
    return absl::UnauthenticatedError(absl::StrCat(
        "webhook-timestamp is more than ", absl::ToInt64Seconds(tolerance),
        " seconds from now (replayed, or a clock is off)"));
  }

  std::vector<std::string> expected;
  for (const std::string& key : keys) {
    expected.push_back(Signature(key, *message_id, seconds_text, body));
  }
  bool matched = false;
  // No early exit: every entry is compared against every key.
  for (absl::string_view entry :
       absl::StrSplit(*signatures, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    absl::string_view value = entry;
    if (!absl::ConsumePrefix(&value, "v1,")) continue;
    for (const std::string& e : expected) {
      matched |= ConstantTimeEquals(e, value);
    }
  }
  if (!matched) {
    return absl::UnauthenticatedError(
        "no webhook-signature entry matches the secret");
  }
  return absl::OkStatus();
}

absl::string_view SignedContent(absl::string_view method,
                                absl::string_view target,
                                absl::string_view body) {
  if (!absl::EqualsIgnoreCase(method, "GET")) return body;
  // A fragment never reaches a server; cut one all the same.
  target = target.substr(0, target.find('#'));
  const size_t question = target.find('?');
  if (question == absl::string_view::npos) return absl::string_view();
  return target.substr(question + 1);
}

absl::StatusOr<std::string> Sign(absl::string_view secret,
                                 absl::string_view message_id,
                                 int64_t timestamp, absl::string_view body) {
  RIO_CLIENT_ASSIGN_OR_RETURN(const std::string key, KeyOf(secret));
  return absl::StrCat(
      "v1,", Signature(key, message_id, absl::StrCat(timestamp), body));
}

}  // namespace rio::webhook
