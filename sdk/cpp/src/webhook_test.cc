#include "rio/webhook.h"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sdk/cpp/tests/status_matchers.h"

namespace rio::webhook {
namespace {

using ::rio::testing::IsOk;
using ::rio::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using Code = absl::StatusCode;

// The Standard Webhooks specification's test vector.
constexpr char kSecret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr char kMessageId[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr int64_t kTimestamp = 1614265330;
constexpr char kBody[] = R"({"test": 2432232314})";
constexpr char kSignature[] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
// "ABCDEFGHIJKLMNOPQRSTUVWXYZ" as a secret.
constexpr char kOtherSecret[] = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";

const absl::Time kNow = absl::FromUnixSeconds(kTimestamp);

std::map<std::string, std::string> RequestHeaders(
    const std::string& signature = kSignature,
    const std::string& message_id = kMessageId,
    const std::string& timestamp = absl::StrCat(kTimestamp)) {
  return {{"webhook-id", message_id},
          {"webhook-timestamp", timestamp},
          {"webhook-signature", signature}};
}

TEST(Webhook, StandardWebhooksVectorVerifies) {
  EXPECT_THAT(Verify(kSecret, RequestHeaders(), kBody, kNow), IsOk());
}

TEST(Webhook, SignReproducesTheVector) {
  const absl::StatusOr<std::string> signature =
      Sign(kSecret, kMessageId, kTimestamp, kBody);
  ASSERT_THAT(signature, IsOk());
  EXPECT_EQ(*signature, kSignature);
}

TEST(Webhook, SecretWithoutPrefixVerifies) {
  EXPECT_THAT(
      Verify(std::string(kSecret).substr(6), RequestHeaders(), kBody, kNow),
      IsOk());
}

TEST(Webhook, TamperedBodyIsRejected) {
  EXPECT_THAT(
      Verify(kSecret, RequestHeaders(), R"({"test": 2432232315})", kNow),
      StatusIs(Code::kUnauthenticated,
               Eq("no webhook-signature entry matches the secret")));
  EXPECT_THAT(Verify(kSecret, RequestHeaders(), absl::StrCat(kBody, " "), kNow),
              StatusIs(Code::kUnauthenticated, HasSubstr("no webhook-sig")));
}

TEST(Webhook, TamperedIdIsRejected) {
  EXPECT_THAT(
      Verify(kSecret, RequestHeaders(kSignature, "msg_other"), kBody, kNow),
      StatusIs(Code::kUnauthenticated, HasSubstr("no webhook-signature")));
}

TEST(Webhook, OldTimestampIsRejected) {
  EXPECT_THAT(
      Verify(kSecret, RequestHeaders(), kBody, kNow + absl::Seconds(300)),
      IsOk());
  EXPECT_THAT(
      Verify(kSecret, RequestHeaders(), kBody, kNow + absl::Seconds(301)),
      StatusIs(Code::kUnauthenticated,
               Eq("webhook-timestamp is more than 300 seconds from now "
                  "(replayed, or a clock is off)")));
  EXPECT_THAT(Verify(kSecret, RequestHeaders(), kBody, kNow + absl::Hours(1)),
              StatusIs(Code::kUnauthenticated, HasSubstr("more than 300")));
}

TEST(Webhook, FutureTimestampIsRejected) {
  EXPECT_THAT(
      Verify(kSecret, RequestHeaders(), kBody, kNow - absl::Seconds(301)),
      StatusIs(Code::kUnauthenticated, HasSubstr("more than 300")));
}

TEST(Webhook, ToleranceIsConfigurable) {
  EXPECT_THAT(Verify(kSecret, RequestHeaders(), kBody, kNow + absl::Hours(1),
                     absl::Hours(1)),
              IsOk());
}

TEST(Webhook, CurrentTimeIsTheDefault) {
  // The vector is from 2021: with the real clock it is far too old.
  EXPECT_THAT(Verify(kSecret, RequestHeaders(), kBody),
              StatusIs(Code::kUnauthenticated, HasSubstr("more than 300")));
}

TEST(Webhook, WrongSecretIsRejected) {
  EXPECT_THAT(Verify(kOtherSecret, RequestHeaders(), kBody, kNow),
              StatusIs(Code::kUnauthenticated,
                       Eq("no webhook-signature entry matches the secret")));
}

TEST(Webhook, EveryV1EntryIsChecked) {
  const std::string other = *Sign(kOtherSecret, kMessageId, kTimestamp, kBody);
  // During a rotation Rio sends one entry per secret; either may match.
  for (const std::string& signature :
       {absl::StrCat(other, " ", kSignature),
        absl::StrCat(kSignature, " ", other),
        absl::StrCat("v2,abc ", other, "  ", kSignature)}) {
    EXPECT_THAT(Verify(kSecret, RequestHeaders(signature), kBody, kNow), IsOk())
        << signature;
  }
  // Only v1 entries count.
  std::string v2 = kSignature;
  v2[1] = '2';
  EXPECT_THAT(Verify(kSecret, RequestHeaders(v2), kBody, kNow),
              StatusIs(Code::kUnauthenticated));
  EXPECT_THAT(Verify(kSecret, RequestHeaders(other), kBody, kNow),
              StatusIs(Code::kUnauthenticated));
}

TEST(Webhook, SeveralSecretsAreAccepted) {
  const std::vector<std::string> both = {kOtherSecret, kSecret};
  EXPECT_THAT(Verify(both, RequestHeaders(), kBody, kNow), IsOk());
  const std::vector<std::string> other = {kOtherSecret};
  EXPECT_THAT(Verify(other, RequestHeaders(), kBody, kNow),
              StatusIs(Code::kUnauthenticated));
}

TEST(Webhook, MissingHeaderIsRejected) {
  for (const std::string missing :
       {"webhook-id", "webhook-timestamp", "webhook-signature"}) {
    std::map<std::string, std::string> headers = RequestHeaders();
    headers.erase(missing);
    EXPECT_THAT(Verify(kSecret, headers, kBody, kNow),
                StatusIs(Code::kUnauthenticated,
                         Eq(absl::StrCat("missing ", missing, " header"))));
    headers[missing] = "";
    EXPECT_THAT(Verify(kSecret, headers, kBody, kNow),
                StatusIs(Code::kUnauthenticated,
                         Eq(absl::StrCat("missing ", missing, " header"))));
  }
}

TEST(Webhook, MalformedTimestampIsRejected) {
  for (const std::string timestamp :
       {std::string(" "), std::string("abc"), std::string("1614265330.5"),
        std::string("-1614265330"), std::string("+1614265330"),
        std::string("0x5f"), std::string("1e9"), std::string("1614265330abc"),
        std::string("1614265330\xff"), std::string("\xd9\xa1\xd9\xa6"),
        std::string("1614\0"
                    "265330",
                    11),
        // Beyond int64 (SimpleAtoi's overflow), and far beyond.
        std::string("9223372036854775808"), std::string("99999999999999999999"),
        std::string(400, '9'), std::string(5000, '9'),
        std::string(100000, '1')}) {
    EXPECT_THAT(
        Verify(kSecret, RequestHeaders(kSignature, kMessageId, timestamp),
               kBody, kNow),
        StatusIs(Code::kUnauthenticated, HasSubstr("webhook-timestamp")))
        << timestamp.substr(0, 30);
  }
}

// Timestamps at the edges of int64 and absl::Time are stale, never an
// overflow.
TEST(Webhook, FarTimestampsAreStale) {
  for (const std::string timestamp :
       {"0", "1", "9223372036854775807", "9223372036854775806",
        "0000000001614265330"}) {
    for (const absl::Time now :
         {kNow + absl::Hours(1), absl::InfinitePast(), absl::InfiniteFuture(),
          absl::FromUnixSeconds(std::numeric_limits<int64_t>::min())}) {
      EXPECT_THAT(
          Verify(kSecret, RequestHeaders(kSignature, kMessageId, timestamp),
                 kBody, now),
          StatusIs(Code::kUnauthenticated, HasSubstr("seconds from now")))
          << timestamp << " at " << now;
    }
  }
  EXPECT_THAT(Verify(kSecret,
                     RequestHeaders(kSignature, kMessageId,
                                    absl::StrCat(" ", kTimestamp, " ")),
                     kBody, kNow),
              IsOk());
}

// A GET handler gets the payload in the query string and an empty body: the
// signature covers the query string, the bytes after '?' as sent.
constexpr char kQuery[] = "static=1&content=I+am+a+spammer&n=2";

TEST(Webhook, AGetIsVerifiedOverItsQueryString) {
  const absl::StatusOr<std::string> signature =
      Sign(kSecret, kMessageId, kTimestamp, kQuery);
  ASSERT_THAT(signature, IsOk());
  const auto headers = RequestHeaders(*signature);
  EXPECT_THAT(Verify(kSecret, headers, kQuery, kNow), IsOk());
  const std::string target = absl::StrCat("/hooks/get?", kQuery);
  EXPECT_THAT(Verify(kSecret, headers, SignedContent("GET", target, ""), kNow),
              IsOk());
  // Not over the empty body.
  EXPECT_THAT(Verify(kSecret, headers, "", kNow),
              StatusIs(Code::kUnauthenticated));
}

TEST(Webhook, ATamperedQueryStringIsRejected) {
  const absl::StatusOr<std::string> signature =
      Sign(kSecret, kMessageId, kTimestamp, kQuery);
  ASSERT_THAT(signature, IsOk());
  for (const char* tampered :
       {"static=1&content=I+am+a+friend&n=2",
        "static=1&content=I+am+a+spammer&n=2&admin=1",
        "content=I+am+a+spammer&n=2",
        "static=1&content=I%20am%20a%20spammer&n=2", ""}) {
    EXPECT_THAT(Verify(kSecret, RequestHeaders(*signature), tampered, kNow),
                StatusIs(Code::kUnauthenticated,
                         Eq("no webhook-signature entry matches the secret")))
        << tampered;
  }
}

TEST(Webhook, SignedContentIsTheQueryStringForGetOnly) {
  EXPECT_EQ(SignedContent("GET", "/h?a=1&b=%41", "body"), "a=1&b=%41");
  EXPECT_EQ(SignedContent("get", "/h?a=1", ""), "a=1");
  EXPECT_EQ(SignedContent("GET", "/h?a=?b/../c", ""), "a=?b/../c");
  EXPECT_EQ(SignedContent("GET", "/h?a=1#frag", ""), "a=1");
  EXPECT_EQ(SignedContent("GET", "/h#frag?a=1", ""), "");
  EXPECT_EQ(SignedContent("GET", "/h?", "body"), "");
  EXPECT_EQ(SignedContent("GET", "/h", "body"), "");
  EXPECT_EQ(SignedContent("POST", "/h?a=1", "body"), "body");
  EXPECT_EQ(SignedContent("PUT", "/h?a=1", "body"), "body");
}

TEST(Webhook, HeaderNamesAreCaseInsensitive) {
  std::map<std::string, std::string> title_case;
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [name, value] : RequestHeaders()) {
    std::string title = name;
    title[0] = absl::ascii_toupper(title[0]);
    title[8] = absl::ascii_toupper(title[8]);  // Webhook-Id, ...
    title_case[title] = value;
    pairs.emplace_back(absl::AsciiStrToUpper(name), value);
  }
  EXPECT_THAT(Verify(kSecret, title_case, kBody, kNow), IsOk());
  EXPECT_THAT(Verify(kSecret, pairs, kBody, kNow), IsOk());
}

TEST(Webhook, HeadersMayComeFromALookupFunction) {
  const std::map<std::string, std::string> headers = RequestHeaders();
  std::vector<std::string> asked;
  auto lookup = [&](absl::string_view name) -> std::optional<std::string> {
    asked.emplace_back(name);
    auto it = headers.find(std::string(name));
    if (it == headers.end()) return std::nullopt;
    return it->second;
  };
  EXPECT_THAT(Verify(kSecret, lookup, kBody, kNow), IsOk());
  EXPECT_THAT(asked,
              ::testing::UnorderedElementsAre("webhook-id", "webhook-timestamp",
                                              "webhook-signature"));
}

TEST(Webhook, MalformedSecretIsASetupError) {
  EXPECT_THAT(Verify("whsec_not*base64", RequestHeaders(), kBody, kNow),
              StatusIs(Code::kInvalidArgument,
                       Eq("the webhook secret is not base64 after 'whsec_'")));
  EXPECT_THAT(
      Verify("whsec_", RequestHeaders(), kBody, kNow),
      StatusIs(Code::kInvalidArgument, Eq("the webhook secret is empty")));
  EXPECT_THAT(Verify(std::vector<std::string>{}, RequestHeaders(), kBody, kNow),
              StatusIs(Code::kInvalidArgument, Eq("no webhook secret given")));
  EXPECT_THAT(Sign("whsec_a", kMessageId, kTimestamp, kBody),
              StatusIs(Code::kInvalidArgument, HasSubstr("not base64")));
}

}  // namespace
}  // namespace rio::webhook
