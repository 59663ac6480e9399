#include "server/dispatch/request.h"

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "server/util/json.h"

namespace rio::dispatch {
namespace {

TEST(FormUrlEncode, KeepsUnreservedBytesAndEncodesTheRest) {
  EXPECT_EQ(FormUrlEncode(""), "");
  EXPECT_EQ(FormUrlEncode("AZaz09-._*"), "AZaz09-._*");
  EXPECT_EQ(FormUrlEncode("a b"), "a+b");
  EXPECT_EQ(FormUrlEncode("~!'()+&=%/?#:@"),
            "%7E%21%27%28%29%2B%26%3D%25%2F%3F%23%3A%40");
  EXPECT_EQ(FormUrlEncode("caf\xc3\xa9"), "caf%C3%A9");
  EXPECT_EQ(FormUrlEncode(std::string("\0\n\x7f", 3)), "%00%0A%7F");
}

TEST(FormEncode, EncodesTheSeedExample) {
  const char* payload = R"({"ip":"127.0.0.1","content":"I am a spammer",)"
                        R"("n":1,"tags":["a", "b"]})";
  ASSERT_TRUE(util::ValidateJsonObject("payload", payload).ok());
  EXPECT_EQ(FormEncode(payload),
            "ip=127.0.0.1&content=I+am+a+spammer&n=1&tags=%5B%22a%22%2C%22b%22%"
            "5D");
}

TEST(FormEncode, SendsStringsDecodedAndOtherValuesAsCompactJson) {
  EXPECT_EQ(FormEncode(R"({"s":"a\"b\u00e9\ud83d\ude00\n"})"),
            "s=a%22b%C3%A9%F0%9F%98%80%0A");
  EXPECT_EQ(FormEncode(R"({"big": 12345678901234567890, "f": -1.5e+3})"),
            "big=12345678901234567890&f=-1.5e%2B3");
  EXPECT_EQ(FormEncode(R"({"t":true,"f":false,"n":null})"),
            "t=true&f=false&n=null");
  EXPECT_EQ(FormEncode(R"({"o": { "k" : "v w" , "a" : [ ] }})"),
            "o=%7B%22k%22%3A%22v+w%22%2C%22a%22%3A%5B%5D%7D");
  EXPECT_EQ(FormEncode(R"({"empty":""})"), "empty=");
}

TEST(FormEncode, EncodesKeysAndKeepsOrderAndDuplicates) {
  EXPECT_EQ(FormEncode(R"({"z":1,"a&b=c":2,"z":3,"":4})"),
            "z=1&a%26b%3Dc=2&z=3&=4");
}

TEST(FormEncode, EmptyObjectGivesEmptyBody) {
  EXPECT_EQ(FormEncode("{}"), "");
  EXPECT_EQ(FormEncode(" { } "), "");
}

TEST(SignStandardWebhook, ReproducesTheStandardWebhooksVector) {
  absl::StatusOr<std::string> signature = SignStandardWebhook(
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
      1614265330, "{\"test\": 2432232314}");
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(*signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(SignStandardWebhook, DecodesASecretWithoutPrefixWhole) {
  absl::StatusOr<std::string> signature = SignStandardWebhook(
      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
      1614265330, "{\"test\": 2432232314}");
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(*signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(SignStandardWebhook, SignsTheBodyBytesVerbatim) {
  // Expected values from Python's hmac module; "c2VjcmV0" is "secret".
  absl::StatusOr<std::string> empty =
      SignStandardWebhook("whsec_c2VjcmV0", "msg_1", 0, "");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "v1,DnK+BAJSWrz6IB4k7zGAB9iffkL4DFVc6kTyw0DGjkw=");

  absl::StatusOr<std::string> utf8 = SignStandardWebhook(
      "whsec_c2VjcmV0", "msg_2", 1700000000, "{\"a\":\"\xc3\xa9\"}");
  ASSERT_TRUE(utf8.ok()) << utf8.status();
  EXPECT_EQ(*utf8, "v1,T5dmrZ3jmzTS2y0qTzU+hv8/p7LdyVLzWFLFi9BWMYw=");
}

TEST(SignStandardWebhook, ChangesWithEveryInput) {
  auto sign = [](absl::string_view id, int64_t ts, absl::string_view body) {
    return *SignStandardWebhook("whsec_c2VjcmV0", id, ts, body);
  };
  const std::string base = sign("msg_1", 1, "{}");
  EXPECT_NE(sign("msg_2", 1, "{}"), base);
  EXPECT_NE(sign("msg_1", 2, "{}"), base);
  EXPECT_NE(sign("msg_1", 1, "{ }"), base);
  EXPECT_NE(*SignStandardWebhook("whsec_c2VjcmV1", "msg_1", 1, "{}"), base);
}

TEST(SignStandardWebhook, RejectsSecretsThatAreNotBase64) {
  for (const char* bad : {"whsec_not base64!", "whsec_abc", "whsec_",
                          "whsec_c2VjcmV0\n", "whsec_c2VjcmV0-_"}) {
    absl::StatusOr<std::string> signature =
        SignStandardWebhook(bad, "msg_1", 1, "{}");
    ASSERT_FALSE(signature.ok()) << bad;
    EXPECT_EQ(signature.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_EQ(signature.status().message().find("not base64!"),
              absl::string_view::npos)
        << "the secret leaked into the message";
  }
  EXPECT_EQ(SignStandardWebhook("whsec_abc", "m", 1, "").status().message(),
            "signing secret is not valid base64 (expected whsec_<base64>)");
  EXPECT_EQ(SignStandardWebhook("whsec_", "m", 1, "").status().message(),
            "signing secret is empty");
}

TEST(AppendQuery, AddsTheRightSeparator) {
  EXPECT_EQ(AppendQuery("http://h/hook", "a=1&b=2"), "http://h/hook?a=1&b=2");
  EXPECT_EQ(AppendQuery("http://h/hook?x=y", "a=1"), "http://h/hook?x=y&a=1");
  EXPECT_EQ(AppendQuery("http://h/hook?", "a=1"), "http://h/hook?a=1");
  EXPECT_EQ(AppendQuery("http://h/hook?x=y&", "a=1"), "http://h/hook?x=y&a=1");
}

TEST(AppendQuery, LeavesUrlUnchangedForEmptyQuery) {
  EXPECT_EQ(AppendQuery("http://h/hook", ""), "http://h/hook");
  EXPECT_EQ(AppendQuery("http://h/hook?x=y", ""), "http://h/hook?x=y");
}

TEST(AppendQuery, KeepsAFragmentLast) {
  EXPECT_EQ(AppendQuery("http://h/hook#top", "a=1"), "http://h/hook?a=1#top");
  EXPECT_EQ(AppendQuery("http://h/hook?x#top?", "a=1"),
            "http://h/hook?x&a=1#top?");
}

}  // namespace
}  // namespace rio::dispatch
