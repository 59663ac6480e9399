#include "server/dispatch/request.h"

#include <curl/curl.h>

#include <optional>
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

TEST(SignStandardWebhook, SignsAGetsQueryStringAsTheContent) {
  // A GET handler's request, for "http://h/hook?static=1" and the payload
  // {"content": "I am a spammer", "n": 2}; expected from Python's hmac.
  const std::string url =
      AppendQuery("http://h/hook?static=1",
                  FormEncode(R"({"content": "I am a spammer", "n": 2})"));
  ASSERT_EQ(QueryOf(url), "static=1&content=I+am+a+spammer&n=2");
  absl::StatusOr<std::string> signature =
      SignStandardWebhook("whsec_c2VjcmV0", "msg_3", 1700000000, QueryOf(url));
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(*signature, "v1,Vl0rOUMDj+A/t0W+ufON8i+gtYYEsUmVLdWt54Arvkk=");
  // Any change to the query changes the signature.
  EXPECT_NE(*SignStandardWebhook("whsec_c2VjcmV0", "msg_3", 1700000000,
                                 "static=1&content=I+am+a+friend&n=2"),
            *signature);
  EXPECT_NE(*SignStandardWebhook("whsec_c2VjcmV0", "msg_3", 1700000000, ""),
            *signature);
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

TEST(QueryOf, IsWhatFollowsTheFirstQuestionMark) {
  EXPECT_EQ(QueryOf("http://h/hook"), "");
  EXPECT_EQ(QueryOf("http://h/hook?"), "");
  EXPECT_EQ(QueryOf("http://h/hook?a=1&b=2"), "a=1&b=2");
  EXPECT_EQ(QueryOf("http://h?a=1"), "a=1");
  EXPECT_EQ(QueryOf("http://h/hook?a=?b/../c&"), "a=?b/../c&");
  EXPECT_EQ(QueryOf("http://h/hook?a=1#top?x"), "a=1");
  EXPECT_EQ(QueryOf("http://h/hook#top?x"), "");
  EXPECT_EQ(QueryOf("http://h/hook?a=%41&e=\xc3\xa9"), "a=%41&e=\xc3\xa9");
}

// The query curl will send for `url`, as libcurl's own URL parser (the one a
// transfer uses) reads it; nullopt for none.
std::optional<std::string> CurlQuery(const std::string& url) {
  CURLU* parsed = curl_url();
  std::optional<std::string> result;
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* query = nullptr;
    if (curl_url_get(parsed, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
      result = query;
      curl_free(query);
    } else {
      result = "";
    }
  }
  curl_url_cleanup(parsed);
  return result;
}

// What Rio signs is byte for byte what curl puts in the request line: curl
// neither re-encodes nor normalises a query (its dot-segment removal is for
// the path only).
TEST(QueryOf, MatchesTheQueryCurlSends) {
  for (const std::string handler_url :
       {"http://h/hook", "http://h/hook?", "http://h/hook?static=1",
        "https://h:8443/a/../b?x=%41%2f&y=\xc3\xa9", "http://h?q=/../.",
        "http://[::1]:5000/hook?a=?b&", "http://h/hook?a+b=c%20d&&"}) {
    for (const std::string payload :
         {"{}", R"({"content": "I am a spammer", "n": 2})",
          R"({"s": "a b&c=d+e%f \u00e9 ?#/", "o": {"k": [1]}})"}) {
      const std::string url = AppendQuery(handler_url, FormEncode(payload));
      const std::optional<std::string> curl_query = CurlQuery(url);
      ASSERT_TRUE(curl_query.has_value()) << url;
      EXPECT_EQ(QueryOf(url), *curl_query) << url;
    }
  }
}

TEST(RedactUrl, HidesUserinfoAndQuery) {
  EXPECT_EQ(RedactUrl("https://user:pw@h.example:8443/p/a?token=x&b=2"),
            "https://\u2022\u2022\u2022@h.example:8443/p/a?\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl("http://user@h/"), "http://\u2022\u2022\u2022@h/");
  EXPECT_EQ(RedactUrl("http://a@b@h/x"), "http://\u2022\u2022\u2022@h/x");
  EXPECT_EQ(RedactUrl("http://h?secret"), "http://h?\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl("http://u:p@h?q"),
            "http://\u2022\u2022\u2022@h?\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl("http://h/p?q=1#frag"),
            "http://h/p?\u2022\u2022\u2022#\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl("http://h/p#frag"), "http://h/p#\u2022\u2022\u2022");
}

TEST(RedactUrl, KeepsEverythingElse) {
  for (const char* url :
       {"http://127.0.0.1:5000/webhook/comment/antispam", "https://h",
        "http://[::1]:8080/a/b", "http://h/p?", "http://h/p#", "http://h/a@b/c",
        "http://h/user:pw"}) {
    EXPECT_EQ(RedactUrl(url), url);
  }
  // An '@' after the authority is not userinfo; nor is "://" in a query.
  EXPECT_EQ(RedactUrl("http://h/p?next=http://u:p@x/"),
            "http://h/p?\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl("/p?next=http://u:p@x/"), "/p?\u2022\u2022\u2022");
  EXPECT_EQ(RedactUrl(""), "");
}

TEST(RedactUrl, AppendsToALogBuffer) {
  std::string log = "REQUEST ";
  AppendRedactedUrl("http://u@h/p?q", &log);
  EXPECT_EQ(log, "REQUEST http://\u2022\u2022\u2022@h/p?\u2022\u2022\u2022");
}

}  // namespace
}  // namespace rio::dispatch
