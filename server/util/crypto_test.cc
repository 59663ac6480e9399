#include "server/util/crypto.h"

#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace rio::util {
namespace {

TEST(Crypto, Sha256MatchesFips180Vectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256(
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256("abc").size(), 32u);
}

TEST(Crypto, HmacSha256MatchesRfc4231TestCase1) {
  EXPECT_EQ(HexEncode(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(Crypto, HmacSha256MatchesRfc4231TestCase2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Crypto, HmacSha256AcceptsEmptyKeyAndData) {
  EXPECT_EQ(HexEncode(HmacSha256(absl::string_view(), absl::string_view())),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(Crypto, HmacSha256ConcatMatchesTheWholeMessage) {
  EXPECT_EQ(HexEncode(HmacSha256Concat(
                "Jefe", {"what do ya", " want ", "", "for nothing?"})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HmacSha256Concat("k", {}), HmacSha256("k", ""));
}

// Each call is keyed anew: neither a previous key nor a previous message of
// the same thread carries over, an empty key included.
TEST(Crypto, HmacSha256KeepsNothingBetweenCalls) {
  const std::string jefe =
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  const std::string empty =
      "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
              jefe);
    EXPECT_EQ(HexEncode(HmacSha256("", "")), empty);
  }
  std::string on_other_thread;
  std::thread([&on_other_thread] {
    on_other_thread = HexEncode(HmacSha256("", ""));
  }).join();
  EXPECT_EQ(on_other_thread, empty);
}

// Test vector from the Standard Webhooks specification's reference libraries.
TEST(Crypto, StandardWebhooksSignatureVector) {
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::string prefix = "whsec_";
  ASSERT_EQ(secret.compare(0, prefix.size(), prefix), 0);
  const std::optional<std::string> key =
      Base64Decode(absl::string_view(secret).substr(prefix.size()));
  ASSERT_TRUE(key.has_value());
  const std::string content =
      "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}";
  EXPECT_EQ(Base64Encode(HmacSha256(*key, content)),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(Crypto, Base64EncodeMatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Crypto, Base64DecodeMatchesRfc4648Vectors) {
  EXPECT_EQ(Base64Decode(""), std::optional<std::string>(""));
  EXPECT_EQ(Base64Decode("Zg=="), std::optional<std::string>("f"));
  EXPECT_EQ(Base64Decode("Zm8="), std::optional<std::string>("fo"));
  EXPECT_EQ(Base64Decode("Zm9v"), std::optional<std::string>("foo"));
  EXPECT_EQ(Base64Decode("Zm9vYg=="), std::optional<std::string>("foob"));
  EXPECT_EQ(Base64Decode("Zm9vYmE="), std::optional<std::string>("fooba"));
  EXPECT_EQ(Base64Decode("Zm9vYmFy"), std::optional<std::string>("foobar"));
}

TEST(Crypto, Base64UsesPlusAndSlash) {
  EXPECT_EQ(Base64Encode("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(Base64Decode("+/+/"), std::optional<std::string>("\xfb\xff\xbf"));
}

TEST(Crypto, Base64RoundTripsEveryByteAndLength) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  for (size_t length = 0; length <= all_bytes.size(); ++length) {
    const std::string data = all_bytes.substr(all_bytes.size() - length);
    const std::string encoded = Base64Encode(data);
    EXPECT_EQ(encoded.size() % 4, 0u) << length;
    EXPECT_EQ(Base64Decode(encoded), std::optional<std::string>(data))
        << length;
  }
  for (size_t length = 0; length < 40; ++length) {
    const std::string data = RandomBytes(length);
    EXPECT_EQ(Base64Decode(Base64Encode(data)),
              std::optional<std::string>(data))
        << length;
  }
}

TEST(Crypto, Base64DecodeRejectsWrongLength) {
  EXPECT_EQ(Base64Decode("Z"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg"), std::nullopt);  // Padding is required.
  EXPECT_EQ(Base64Decode("Zg="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9vY"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg==="), std::nullopt);
}

TEST(Crypto, Base64DecodeRejectsBadCharacters) {
  EXPECT_EQ(Base64Decode("Zm9v!A=="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9 "), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v\nYmFy"), std::nullopt);
  EXPECT_EQ(Base64Decode("-_-_"), std::nullopt);  // URL alphabet.
  EXPECT_EQ(Base64Decode(absl::string_view("Zm\0v", 4)), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9\xc3"), std::nullopt);
}

TEST(Crypto, Base64DecodeRejectsBadPadding) {
  EXPECT_EQ(Base64Decode("===="), std::nullopt);
  EXPECT_EQ(Base64Decode("Z==="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg=a"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg==Zm8="), std::nullopt);  // '=' mid-text.
  EXPECT_EQ(Base64Decode("=Zm8"), std::nullopt);
  // Non-zero bits after the last byte: a non-canonical encoding of "f"/"fo".
  EXPECT_EQ(Base64Decode("Zh=="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9="), std::nullopt);
}

TEST(Crypto, Base64UrlEncodeUsesUrlAlphabetWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(Crypto, HexEncodeIsLowerCase) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(absl::string_view("\x00\x01\xab\xff", 4)), "0001abff");
}

TEST(Crypto, RandomBytesHasRequestedSizeAndVaries) {
  EXPECT_EQ(RandomBytes(0), "");
  const std::string a = RandomBytes(32);
  const std::string b = RandomBytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(b.size(), 32u);
  EXPECT_NE(a, b);
}

TEST(Crypto, RandomUuidIsCanonicalVersion4) {
  const std::regex uuid_v4(
      "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string uuid = RandomUuid();
    EXPECT_TRUE(std::regex_match(uuid, uuid_v4)) << uuid;
    seen.insert(uuid);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_NE(RandomUuid(), RandomUuid());
}

TEST(Crypto, TimeOrderedUuidIsVersion7WithTheTimeFirst) {
  const std::regex uuid_v7(
      "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  // 2026-11-28T04:16:56.789Z is 1795839416789 ms, 0x01a2205ed9d5.
  const absl::Time t = absl::FromUnixMillis(1795839416789);
  const std::string uuid = TimeOrderedUuid(t);
  EXPECT_TRUE(std::regex_match(uuid, uuid_v7)) << uuid;
  EXPECT_EQ(uuid.substr(0, 13), "01a2205e-d9d5") << uuid;
  EXPECT_NE(TimeOrderedUuid(t), TimeOrderedUuid(t));
  // A later millisecond sorts after, whatever the random bits.
  for (int i = 0; i < 100; ++i) {
    EXPECT_LT(TimeOrderedUuid(t), TimeOrderedUuid(t + absl::Milliseconds(1)));
  }
}

TEST(Crypto, TimeOrderedUuidBesideSharesTheMillisecond) {
  const std::regex uuid_v7(
      "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  const std::string message = TimeOrderedUuid(absl::FromUnixMillis(1));
  const std::string delivery = TimeOrderedUuidBeside(message);
  EXPECT_TRUE(std::regex_match(delivery, uuid_v7)) << delivery;
  EXPECT_EQ(delivery.substr(0, 13), "00000000-0001");
  EXPECT_NE(delivery, message);
  // Beside something that is no version-7 id: one of now.
  const std::string now = TimeOrderedUuid().substr(0, 8);
  for (const char* other :
       {"", "not a uuid", "f0000000-0000-4000-8000-000000000000"}) {
    const std::string id = TimeOrderedUuidBeside(other);
    EXPECT_TRUE(std::regex_match(id, uuid_v7)) << id;
    EXPECT_GE(id.substr(0, 8), now) << other;
  }
}

TEST(Crypto, ConstantTimeEqualsComparesContentAndSize) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("signature", "signature"));
  EXPECT_TRUE(ConstantTimeEquals(absl::string_view("a\0b", 3),
                                 absl::string_view("a\0b", 3)));
  EXPECT_FALSE(ConstantTimeEquals("signature", "signaturf"));
  EXPECT_FALSE(ConstantTimeEquals("signature", "Signature"));
  EXPECT_FALSE(ConstantTimeEquals("signature", "signatur"));
  EXPECT_FALSE(ConstantTimeEquals("sig", "signature"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("a\0b", 3),
                                  absl::string_view("a\0c", 3)));
}

}  // namespace
}  // namespace rio::util
