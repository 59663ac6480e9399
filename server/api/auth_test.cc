#include "server/api/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

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
            "missing admin token: send 'authorization: Bearer <admin token or "
            "access token>'");
  absl::Status wrong = auth.Check("Bearer s3cre");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), "invalid admin token");
  EXPECT_EQ(auth.Check("Bearer s3cretX").message(), "invalid admin token");
  EXPECT_EQ(auth.Check("s3cret").message(),
            "authorization must be 'Bearer <admin token or access token>'");
  EXPECT_EQ(auth.Check("Basic s3cret").message(),
            "authorization must be 'Bearer <admin token or access token>'");
  EXPECT_EQ(auth.Check("Bearer ").code(), absl::StatusCode::kUnauthenticated);
}

TEST(AdminAuthenticator, TheBootstrapTokenIsAnUnlimitedAdmin) {
  AdminAuthenticator auth("s3cret");
  absl::StatusOr<Caller> caller = auth.Authenticate("Bearer s3cret");
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "bootstrap");
  EXPECT_EQ(caller->scope, v1::AccessToken::ADMIN);
  EXPECT_FALSE(caller->limited_to_project());
  // Without a catalog, no access token is known.
  EXPECT_EQ(auth.Check("Bearer rio_at_x").message(),
            "invalid access token (revoked, or never issued here)");
}

TEST(Caller, EachScopeAllowsWhatItSays) {
  const Caller admin{"a", v1::AccessToken::ADMIN, ""};
  const Caller shop_admin{"s", v1::AccessToken::PROJECT_ADMIN, "shop"};
  const Caller reader{"r", v1::AccessToken::READ_ONLY, ""};
  const Caller shop_reader{"sr", v1::AccessToken::READ_ONLY, "shop"};
  struct Case {
    Access access;
    const char* project;
    bool admin, shop_admin, reader, shop_reader;
  };
  const Case cases[] = {
      {Access::kInstall, "", true, false, false, false},
      {Access::kWrite, "", true, true, false, false},
      {Access::kWrite, "shop", true, true, false, false},
      {Access::kWrite, "blog", true, false, false, false},
      {Access::kRead, "", true, true, true, true},
      {Access::kRead, "shop", true, true, true, true},
      {Access::kRead, "blog", true, false, true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.project);
    EXPECT_EQ(admin.Permits(c.access, "M", c.project).ok(), c.admin);
    EXPECT_EQ(shop_admin.Permits(c.access, "M", c.project).ok(), c.shop_admin);
    EXPECT_EQ(reader.Permits(c.access, "M", c.project).ok(), c.reader);
    EXPECT_EQ(shop_reader.Permits(c.access, "M", c.project).ok(),
              c.shop_reader);
  }
  EXPECT_TRUE(shop_admin.PermitsObject("M", "handler", "h1", "shop").ok());
  const absl::Status other =
      shop_reader.PermitsObject("GetDelivery", "delivery", "d1", "blog");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.message(),
            "access token \"sr\" (scope READ_ONLY) is limited to project "
            "\"shop\"; GetDelivery named delivery d1, which belongs to another "
            "project");
  EXPECT_TRUE(reader.PermitsObject("M", "handler", "h1", "blog").ok());
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

namespace rio::api {
namespace {

std::string TempPath(const std::string& name) {
  // The process id keeps parallel runs (ctest -j, the sanitizer build) apart.
  return ::testing::TempDir() + "/auth-test-" + std::to_string(getpid()) + "-" +
         name;
}

TEST(LoadAdminToken, TakesALongEnoughFlagToken) {
  AdminTokenSource source;
  auto token = LoadAdminToken("0123456789abcdef0123456789abcdef", "", &source);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(source, AdminTokenSource::kFlag);

  token = LoadAdminToken("short-token", TempPath("unused"), &source);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(token.status().message(),
            "--admin_token must be at least 32 characters (it has 11); make "
            "one with: openssl rand -base64 32");
}

TEST(LoadAdminToken, GeneratesIntoAnOwnerOnlyFileAndReadsItBack) {
  const std::string path = TempPath("generated");
  unlink(path.c_str());
  AdminTokenSource source;
  auto token = LoadAdminToken("", path, &source);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(source, AdminTokenSource::kGenerated);
  EXPECT_EQ(token->size(), 43u);
  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  auto again = LoadAdminToken("", path, &source);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(source, AdminTokenSource::kFile);
  EXPECT_EQ(*again, *token);

  chmod(path.c_str(), 0640);
  auto shared = LoadAdminToken("", path, &source);
  EXPECT_EQ(shared.status().message(),
            "--admin_token_file " + path +
                " may be read or written by others than its owner: chmod 600 "
                "it");
  unlink(path.c_str());
}

TEST(LoadAdminToken, RefusesAShortTokenInTheFile) {
  const std::string path = TempPath("short");
  unlink(path.c_str());
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "tiny\n", 5), 5);
  close(fd);
  AdminTokenSource source;
  auto token = LoadAdminToken("", path, &source);
  EXPECT_EQ(token.status().message(),
            "the token in --admin_token_file " + path +
                " must be at least 32 characters (it has 4); make one with: "
                "openssl rand -base64 32");
  unlink(path.c_str());
  EXPECT_EQ(
      LoadAdminToken("", "/nonexistent-dir/token", &source).status().message(),
      "--admin_token_file /nonexistent-dir/token: cannot create it: No "
      "such file or directory");
}

}  // namespace
}  // namespace rio::api
