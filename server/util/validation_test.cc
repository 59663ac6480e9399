#include "server/util/validation.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace rio::util {
namespace {

TEST(ValidateName, AcceptsLettersDigitsDotUnderscoreDash) {
  EXPECT_TRUE(ValidateName("slug", "comment-published").ok());
  EXPECT_TRUE(ValidateName("slug", "a").ok());
  EXPECT_TRUE(ValidateName("slug", "A.b_C-9").ok());
  EXPECT_TRUE(ValidateName("slug", std::string(128, 'x')).ok());
}

TEST(ValidateName, RejectsEmptyNamingTheField) {
  absl::Status s = ValidateName("event", "");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "event is required");
}

TEST(ValidateName, RejectsTooLong) {
  absl::Status s = ValidateName("slug", std::string(129, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "slug is longer than 128 characters (129)");
}

TEST(ValidateName, RejectsOtherCharacters) {
  for (const char* bad : {"a b", "a/b", "ä", "a:b", "a\nb", "comment@x"}) {
    absl::Status s = ValidateName("slug", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("slug"), absl::string_view::npos) << bad;
    EXPECT_NE(s.message().find("may contain only letters, digits"),
              absl::string_view::npos)
        << bad;
  }
  EXPECT_EQ(ValidateName("slug", "a\nb").message(),
            "slug \"a\\x0ab\" may contain only letters, digits, '.', '_' and "
            "'-'");
}

TEST(ValidateDisplayName, AcceptsUtf8AndEmpty) {
  EXPECT_TRUE(ValidateDisplayName("name", "").ok());
  EXPECT_TRUE(ValidateDisplayName("name", "Comments – Ünïcode 评论").ok());
}

TEST(ValidateDisplayName, RejectsControlsBadUtf8AndLength) {
  EXPECT_EQ(ValidateDisplayName("name", "a\tb").message(),
            "name contains control characters");
  EXPECT_EQ(ValidateDisplayName("name", "\xc3").message(),
            "name is not valid UTF-8");
  EXPECT_EQ(ValidateDisplayName("name", "\xc0\xaf").message(),
            "name is not valid UTF-8");
  EXPECT_EQ(ValidateDisplayName("name", std::string(257, 'x')).message(),
            "name is longer than 256 bytes");
}

TEST(ValidateWebhookUrl, AcceptsHttpAndHttps) {
  for (const char* good : {"http://127.0.0.1:8080/webhook/comment/antispam",
                           "https://example.org", "HTTPS://Example.org/x?y=1",
                           "http://[::1]:80/", "http://localhost/a/b"}) {
    EXPECT_TRUE(ValidateWebhookUrl("url", good).ok()) << good;
  }
}

TEST(ValidateWebhookUrl, RejectsWithFieldNamed) {
  struct Case {
    const char* url;
    const char* message;
  } cases[] = {
      {"", "url is required"},
      {"ftp://example.org/",
       "url \"ftp://example.org/\" must start with http:// or https://"},
      {"example.org/hook",
       "url \"example.org/hook\" must start with http:// or https://"},
      {"http://", "url \"http://\" has no host"},
      {"http:///path", "url \"http:///path\" has no host"},
      {"http://:80/", "url \"http://:80/\" has no host"},
      {"http://host:99999/", "url \"http://host:99999/\" has an invalid port"},
      {"http://host:x/", "url \"http://host:x/\" has an invalid port"},
      {"http://host:/", "url \"http://host:/\" has an empty port"},
      {"http://user:pw@host/",
       "url \"http://user:pw@host/\" must not carry credentials; use handler "
       "headers instead"},
      {"http://host/a b",
       "url \"http://host/a b\" contains whitespace or control characters"},
      {"http://host/#frag",
       "url \"http://host/#frag\" must not have a fragment"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateWebhookUrl("url", c.url);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.url;
    EXPECT_EQ(s.message(), c.message) << c.url;
  }
}

TEST(ValidateTimeoutMs, Bounds) {
  EXPECT_TRUE(ValidateTimeoutMs("timeout_ms", 1).ok());
  EXPECT_TRUE(ValidateTimeoutMs("timeout_ms", 300000).ok());
  EXPECT_EQ(ValidateTimeoutMs("timeout_ms", 0).message(),
            "timeout_ms must be between 1 and 300000 milliseconds (got 0)");
  EXPECT_EQ(ValidateTimeoutMs("timeout_ms", -5).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTimeoutMs("timeout_ms", 300001).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateHeaders, AcceptsOrdinaryHeaders) {
  EXPECT_TRUE(ValidateHeaders("headers", {{"X-Api-Key", "abc"},
                                          {"Authorization", "Bearer x"}})
                  .ok());
}

TEST(ValidateHeaders, RejectsReservedAndMalformed) {
  EXPECT_EQ(ValidateHeaders("headers", {{"Content-Type", "x"}}).message(),
            "headers may not set \"Content-Type\"; Rio sets it itself");
  EXPECT_EQ(ValidateHeaders("headers", {{"webhook-id", "x"}}).message(),
            "headers may not set \"webhook-id\"; Rio sets it itself");
  EXPECT_EQ(ValidateHeaders("headers", {{"X-Rio-Event", "x"}}).message(),
            "headers may not set \"X-Rio-Event\"; Rio sets it itself");
  EXPECT_EQ(ValidateHeaders("headers", {{"Bad Name", "x"}}).message(),
            "headers name \"Bad Name\" is not a valid HTTP header name");
  EXPECT_EQ(ValidateHeaders("headers", {{"X-A", "a\r\nX-B: b"}}).message(),
            "headers value of \"X-A\" may not contain CR, LF or NUL");
  std::map<std::string, std::string> many;
  for (int i = 0; i < 65; ++i) many["X-" + std::to_string(i)] = "v";
  EXPECT_EQ(ValidateHeaders("headers", many).message(),
            "headers has more than 64 entries");
}

TEST(ValidateUuid, AcceptsUuidsInEitherCase) {
  EXPECT_TRUE(
      ValidateUuid("id", "0b7f3a52-9c1e-4d2a-8f00-1234567890ab", "x").ok());
  EXPECT_TRUE(
      ValidateUuid("id", "0B7F3A52-9C1E-4D2A-8F00-1234567890AB", "x").ok());
}

TEST(ValidateUuid, RejectsEmptyNamingTheField) {
  absl::Status s = ValidateUuid("handler_id", "", "a handler id");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "handler_id is required");
}

TEST(ValidateUuid, RejectsAnythingElseSayingWhatIsExpected) {
  for (const char* bad : {"42", "0b7f3a52-9c1e-4d2a-8f00-1234567890a",
                          "0b7f3a52-9c1e-4d2a-8f00-1234567890abc",
                          "0b7f3a529c1e-4d2a-8f00-1234567890abc",
                          "0b7f3a52-9c1e-4d2a-8f00-1234567890ag",
                          "{0b7f3a52-9c1e-4d2a-8f00-1234567890}"}) {
    absl::Status s = ValidateUuid("id", bad, "a delivery id (a UUID)");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(s.message(),
              absl::StrCat("id \"", bad, "\" is not a delivery id (a UUID)"));
  }
  EXPECT_EQ(ValidateUuid("id", "a\nb", "a delivery id").message(),
            "id \"a\\x0ab\" is not a delivery id");
}

}  // namespace
}  // namespace rio::util
