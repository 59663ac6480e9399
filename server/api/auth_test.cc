#include "server/api/auth.h"

#include "gtest/gtest.h"
#include "server/util/crypto.h"

namespace rio::api {
namespace {

TEST(AdminAuthenticator, AcceptsBearerToken) {
  AdminAuthenticator auth("s3cret");
  EXPECT_TRUE(auth.Check("Bearer s3cret").ok());
  EXPECT_TRUE(auth.Check("bearer s3cret").ok());
  EXPECT_TRUE(auth.Check("BEARER   s3cret ").ok());
}

TEST(AdminAuthenticator, RejectsMissingWrongAndMalformed) {
  AdminAuthenticator auth("s3cret");
  absl::Status missing = auth.Check("");
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(missing.message(),
            "missing admin token: send 'authorization: Bearer <admin token>'");
  absl::Status wrong = auth.Check("Bearer s3cre");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), "invalid admin token");
  EXPECT_EQ(auth.Check("Bearer s3cretX").message(), "invalid admin token");
  EXPECT_EQ(auth.Check("s3cret").message(),
            "authorization must be 'Bearer <admin token>'");
  EXPECT_EQ(auth.Check("Basic s3cret").message(),
            "authorization must be 'Bearer <admin token>'");
  EXPECT_EQ(auth.Check("Bearer ").code(), absl::StatusCode::kUnauthenticated);
}

TEST(ParseBasicCredentials, ParsesSenderAndToken) {
  auto creds = ParseBasicCredentials(
      "Basic " + util::Base64Encode("comments-app:tok:with:colons"));
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->sender, "comments-app");
  EXPECT_EQ(creds->token, "tok:with:colons");
}

TEST(ParseBasicCredentials, RejectsMalformed) {
  EXPECT_EQ(ParseBasicCredentials("").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(ParseBasicCredentials("Bearer x").status().message(),
            "authorization must be 'Basic base64(<sender>:<token>)'");
  EXPECT_EQ(ParseBasicCredentials("Basic !!!").status().message(),
            "sender credentials are not valid base64");
  EXPECT_EQ(ParseBasicCredentials("Basic " + util::Base64Encode("nocolon"))
                .status()
                .message(),
            "sender credentials must be '<sender>:<token>'");
  EXPECT_EQ(ParseBasicCredentials("Basic " + util::Base64Encode(":tok"))
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(NewToken, IsLongRandomAndUrlSafe) {
  std::string a = NewToken();
  std::string b = NewToken();
  EXPECT_EQ(a.size(), 43u);  // 32 bytes, unpadded base64url
  EXPECT_NE(a, b);
  EXPECT_EQ(
      a.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  EXPECT_EQ(TokenHash(a).size(), 32u);
  EXPECT_EQ(TokenHash(a), util::Sha256(a));
}

}  // namespace
}  // namespace rio::api
