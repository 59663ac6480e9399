#include "rio/dsn.h"

#include <sstream>
#include <string>
#include <tuple>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sdk/cpp/tests/status_matchers.h"

namespace rio {
namespace {

using ::rio::testing::IsOk;
using ::rio::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kExpected[] = "; expected rio://SENDER:TOKEN@HOST:PORT/PROJECT";
constexpr char kNameRule[] = "; use 1-128 letters, digits, '.', '_' or '-'";

struct ValidCase {
  std::string text;
  std::string scheme;
  bool tls;
  std::string host;
  int port;
  std::string sender;
  std::string token;
  std::string project;
};

class ValidDsnTest : public ::testing::TestWithParam<ValidCase> {};

TEST_P(ValidDsnTest, ParsesEveryPart) {
  const ValidCase& want = GetParam();
  const absl::StatusOr<Dsn> dsn = ParseDsn(want.text);
  ASSERT_THAT(dsn, IsOk());
  EXPECT_EQ(dsn->scheme, want.scheme);
  EXPECT_EQ(dsn->tls(), want.tls);
  EXPECT_EQ(dsn->host, want.host);
  EXPECT_EQ(dsn->port, want.port);
  EXPECT_EQ(dsn->sender, want.sender);
  EXPECT_EQ(dsn->token, want.token);
  EXPECT_EQ(dsn->project, want.project);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, ValidDsnTest,
    ::testing::Values(
        ValidCase{"rio://app:tok@127.0.0.1:50051/comments", "rio", false,
                  "127.0.0.1", 50051, "app", "tok", "comments"},
        ValidCase{"rios://app:tok@rio.example.org:443/comments", "rios", true,
                  "rio.example.org", 443, "app", "tok", "comments"},
        // The seed's form: scheme http, "/1/" before the project, no port.
        ValidCase{"http://sender:tok@rio.intra.example.org/1/project", "http",
                  false, "rio.intra.example.org", 50051, "sender", "tok",
                  "project"},
        ValidCase{"https://sender:tok@rio.intra.example.org/1/project", "https",
                  true, "rio.intra.example.org", 50051, "sender", "tok",
                  "project"},
        ValidCase{"http://s:t@h:8443/a/b/c/project/", "http", false, "h", 8443,
                  "s", "t", "project"},
        ValidCase{"rio://app:tok@h/p", "rio", false, "h", 50051, "app", "tok",
                  "p"},
        ValidCase{"RIO://app:tok@H.Example.ORG/p", "rio", false,
                  "h.example.org", 50051, "app", "tok", "p"},
        ValidCase{"rio://a.b_c-d:t%2Fk%40@[::1]:7/x.y_z-1", "rio", false, "::1",
                  7, "a.b_c-d", "t/k@", "x.y_z-1"},
        ValidCase{"  rio://app:tok@h/p\n", "rio", false, "h", 50051, "app",
                  "tok", "p"},
        ValidCase{"rio://app:to:k@h:0080/p", "rio", false, "h", 80, "app",
                  "to:k", "p"}));

TEST(Dsn, TargetBracketsIpv6) {
  EXPECT_EQ(ParseDsn("rio://a:b@[::1]:7/p")->target(), "[::1]:7");
  EXPECT_EQ(ParseDsn("rio://a:b@h/p")->target(), "h:50051");
}

TEST(Dsn, ToStringAndStreamingHideTheToken) {
  const absl::StatusOr<Dsn> dsn = ParseDsn("rio://app:s3cr3t@h:1/p");
  ASSERT_THAT(dsn, IsOk());
  EXPECT_EQ(dsn->ToString(), "rio://app:***@h:1/p");
  std::ostringstream out;
  out << *dsn;
  EXPECT_EQ(out.str(), "rio://app:***@h:1/p");
}

struct MalformedCase {
  std::string text;
  std::string message;
};

class MalformedDsnTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedDsnTest, IsInvalidArgumentWithAnExactMessageAndNoToken) {
  const absl::StatusOr<Dsn> dsn = ParseDsn(GetParam().text);
  EXPECT_THAT(dsn, StatusIs(absl::StatusCode::kInvalidArgument,
                            Eq(GetParam().message)));
  EXPECT_THAT(std::string(dsn.status().message()), Not(HasSubstr("s3cr3t")));
}

std::string Msg(const std::string& shown, const std::string& problem) {
  return "DSN '" + shown + "' " + problem;
}

INSTANTIATE_TEST_SUITE_P(
    Everything, MalformedDsnTest,
    ::testing::Values(
        MalformedCase{"", std::string("the DSN is empty") + kExpected},
        MalformedCase{"   ", std::string("the DSN is empty") + kExpected},
        MalformedCase{
            "app:s3cr3t@h/p",
            Msg("app:***@h/p", std::string("has no scheme") + kExpected)},
        MalformedCase{"ftp://app:s3cr3t@h/p",
                      Msg("ftp://app:***@h/p",
                          "has scheme 'ftp'; use rio:// or http:// "
                          "(plaintext), rios:// or https:// (TLS)")},
        MalformedCase{"GRPC://app:s3cr3t@h/p",
                      Msg("GRPC://app:***@h/p",
                          "has scheme 'grpc'; use rio:// or http:// "
                          "(plaintext), rios:// or https:// (TLS)")},
        MalformedCase{"rio://h:50051/p",
                      Msg("rio://h:50051/p",
                          std::string("has no sender name") + kExpected)},
        MalformedCase{"rio://:s3cr3t@h/p",
                      Msg("rio://:***@h/p",
                          std::string("has no sender name") + kExpected)},
        MalformedCase{
            "rio://app@h/p",
            Msg("rio://app@h/p",
                std::string("has no token after the sender name") + kExpected)},
        MalformedCase{
            "rio://app:@h/p",
            Msg("rio://app:***@h/p",
                std::string("has no token after the sender name") + kExpected)},
        MalformedCase{
            "rio://app:s3cr3t@/p",
            Msg("rio://app:***@/p", std::string("has no host") + kExpected)},
        MalformedCase{"rio://app:s3cr3t@h:0/p",
                      Msg("rio://app:***@h:0/p", "has port 0; use 1-65535")},
        MalformedCase{
            "rio://app:s3cr3t@h:65536/p",
            Msg("rio://app:***@h:65536/p", "has an invalid port; use 1-65535")},
        MalformedCase{
            "rio://app:s3cr3t@h:http/p",
            Msg("rio://app:***@h:http/p", "has an invalid port; use 1-65535")},
        MalformedCase{
            "rio://app:s3cr3t@h:-1/p",
            Msg("rio://app:***@h:-1/p", "has an invalid port; use 1-65535")},
        MalformedCase{"rio://app:s3cr3t@h:/p",
                      Msg("rio://app:***@h:/p",
                          "has an empty port; use 1-65535 or leave it out")},
        MalformedCase{"rio://app:s3cr3t@h",
                      Msg("rio://app:***@h",
                          std::string("names no project (the last path "
                                      "segment)") +
                              kExpected)},
        MalformedCase{"rio://app:s3cr3t@h/",
                      Msg("rio://app:***@h/",
                          std::string("names no project (the last path "
                                      "segment)") +
                              kExpected)},
        MalformedCase{"rio://app:s3cr3t@h//",
                      Msg("rio://app:***@h//",
                          std::string("names no project (the last path "
                                      "segment)") +
                              kExpected)},
        MalformedCase{
            "rio://app:s3cr3t@h/has space",
            Msg("rio://app:***@h/has space",
                std::string("names project 'has space'") + kNameRule)},
        MalformedCase{
            "rio://app:s3cr3t@s3cr3t@h/has space",
            Msg("rio://app:***@h/has space",
                std::string("names project 'has space'") + kNameRule)},
        MalformedCase{
            "rio://app:s3cr3t@h/p?timeout=1",
            Msg("rio://app:***@h/p?timeout=1",
                std::string("may not have a query or fragment") + kExpected)},
        MalformedCase{
            "rio://app:s3cr3t@h/p#x",
            Msg("rio://app:***@h/p#x",
                std::string("may not have a query or fragment") + kExpected)},
        MalformedCase{
            "rio://bad name:s3cr3t@h/p",
            Msg("rio://bad name:***@h/p",
                std::string("has sender name 'bad name'") + kNameRule)},
        MalformedCase{
            "rio://me@corp:s3cr3t@h/p",
            Msg("rio://me@corp:***@h/p",
                std::string("has sender name 'me@corp'") + kNameRule)},
        MalformedCase{
            "rio://app:s3cr3t@[::1/p",
            Msg("rio://app:***@[::1/p", "is not a URL: Invalid IPv6 URL")},
        MalformedCase{"rio://app:s3cr3t@[::g]/p",
                      Msg("rio://app:***@[::g]/p",
                          "is not a URL: '::g' is not an IPv6 address")}));

}  // namespace
}  // namespace rio
