#include "server/store/handler_secrets.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/util/secret_box.h"

namespace rio::store {
namespace {

using ::testing::HasSubstr;

constexpr char kId[] = "6f1c1f0e-8d6b-4b8e-9a57-0a6f4f7c1e01";
constexpr char kOtherId[] = "0b7f1c1f-8d6b-4b8e-9a57-0a6f4f7c1e02";

util::SecretBox Box(const std::string& id, char fill) {
  return *util::SecretBox::Create(
      {{id, std::string(util::kSecretKeyBytes, fill)}});
}

RowSecrets Example() {
  RowSecrets row;
  row.secret = "whsec_current";
  row.previous_secret = "whsec_previous";
  row.headers = {{"Authorization", "Bearer xyz"}, {"X-Team", "spam"}};
  row.client_key = "-----BEGIN PRIVATE KEY-----\nkey\n";
  return row;
}

TEST(HandlerSecrets, SealsEveryValueAndOpensThemBack) {
  const util::SecretBox box = Box("k1", 'a');
  const HandlerSecrets secrets(&box);
  const StoredSecrets stored = secrets.Seal(kId, Example());
  EXPECT_TRUE(stored.sealed);
  EXPECT_TRUE(absl::StartsWith(stored.secret, "rio:v1:k1:"));
  EXPECT_TRUE(absl::StartsWith(stored.previous_secret, "rio:v1:k1:"));
  // Names stay readable (replies show them); values do not.
  EXPECT_THAT(stored.headers_json, HasSubstr("\"Authorization\":\"rio:v1:k1:"));
  EXPECT_FALSE(absl::StrContains(stored.headers_json, "Bearer xyz"));
  EXPECT_TRUE(absl::StartsWith(stored.client_key, "rio:v1:k1:"));
  absl::StatusOr<RowSecrets> opened = secrets.Open(kId, stored);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->secret, "whsec_current");
  EXPECT_EQ(opened->previous_secret, "whsec_previous");
  EXPECT_EQ(opened->headers, Example().headers);
  EXPECT_EQ(opened->client_key, Example().client_key);
  // A key sealed for one handler does not open as another's.
  StoredSecrets moved = secrets.Seal("other-id", Example());
  moved.client_key = stored.client_key;
  EXPECT_FALSE(secrets.Open("other-id", moved).ok());
}

TEST(HandlerSecrets, NoPreviousSecretStaysEmpty) {
  const util::SecretBox box = Box("k1", 'a');
  const HandlerSecrets secrets(&box);
  RowSecrets row = Example();
  row.previous_secret.clear();
  const StoredSecrets stored = secrets.Seal(kId, row);
  EXPECT_EQ(stored.previous_secret, "");
  EXPECT_EQ(secrets.Open(kId, stored)->previous_secret, "");
}

TEST(HandlerSecrets, PlaintextWithoutABox) {
  const HandlerSecrets secrets(nullptr);
  const StoredSecrets stored = secrets.Seal(kId, Example());
  EXPECT_FALSE(stored.sealed);
  EXPECT_EQ(stored.secret, "whsec_current");
  // A JSON object (member order is the JSON library's).
  EXPECT_THAT(stored.headers_json,
              HasSubstr(R"("Authorization":"Bearer xyz")"));
  EXPECT_THAT(stored.headers_json, HasSubstr(R"("X-Team":"spam")"));
  EXPECT_EQ(secrets.Open(kId, stored)->headers, Example().headers);
}

TEST(HandlerSecrets, ASealedRowWithoutABoxIsFailedPrecondition) {
  const util::SecretBox box = Box("k1", 'a');
  const StoredSecrets stored = HandlerSecrets(&box).Seal(kId, Example());
  absl::StatusOr<RowSecrets> opened = HandlerSecrets(nullptr).Open(kId, stored);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(opened.status().message(), HasSubstr("no --secret_key_file"));
}

TEST(HandlerSecrets, PlaintextRowsOpenWithABox) {
  const util::SecretBox box = Box("k1", 'a');
  const StoredSecrets stored = HandlerSecrets(nullptr).Seal(kId, Example());
  EXPECT_EQ(HandlerSecrets(&box).Open(kId, stored)->secret, "whsec_current");
}

// A value copied into another handler's row, or under another header name,
// does not open: each is bound to where it was sealed.
TEST(HandlerSecrets, ValuesMovedToAnotherRowOrNameDoNotOpen) {
  const util::SecretBox box = Box("k1", 'a');
  const HandlerSecrets secrets(&box);
  const StoredSecrets mine = secrets.Seal(kId, Example());
  absl::StatusOr<RowSecrets> moved = secrets.Open(kOtherId, mine);
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(moved.status().message(),
              HasSubstr(absl::StrCat("handler ", kOtherId,
                                     ": a value sealed under key \"k1\"")));

  StoredSecrets renamed = mine;
  const std::string from = "\"Authorization\":";
  renamed.headers_json.replace(renamed.headers_json.find(from), from.size(),
                               "\"X-Authorization\":");
  EXPECT_EQ(secrets.Open(kId, renamed).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(HandlerSecrets, AKeyMissingFromTheBoxIsNotFoundNamingIt) {
  const util::SecretBox old_box = Box("old", 'a');
  const util::SecretBox new_box = Box("new", 'b');
  const StoredSecrets stored = HandlerSecrets(&old_box).Seal(kId, Example());
  absl::StatusOr<RowSecrets> opened =
      HandlerSecrets(&new_box).Open(kId, stored);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(opened.status().message(), HasSubstr("key \"old\""));
}

TEST(HandlerSecrets, MaskedHeadersKeepNamesOnly) {
  EXPECT_EQ(HandlerSecrets::MaskedHeaders(
                R"({"Authorization":"rio:v1:k1:AAAA","X-Team":"spam"})"),
            (std::map<std::string, std::string>{
                {"Authorization", std::string(kMaskedValue)},
                {"X-Team", std::string(kMaskedValue)}}));
  EXPECT_TRUE(HandlerSecrets::MaskedHeaders("{}").empty());
  EXPECT_EQ(kMaskedValue, "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2");
}

}  // namespace
}  // namespace rio::store
