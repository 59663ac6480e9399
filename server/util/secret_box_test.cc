#include "server/util/secret_box.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/util/crypto.h"

namespace rio::util {
namespace {

using ::testing::HasSubstr;

std::string Key(char fill) { return std::string(kSecretKeyBytes, fill); }

SecretBox MustBox(std::vector<SecretKey> keys) {
  absl::StatusOr<SecretBox> box = SecretBox::Create(std::move(keys));
  EXPECT_TRUE(box.ok()) << box.status();
  return *std::move(box);
}

// The body of a sealed value (nonce || ciphertext || tag), decoded.
std::string Body(const std::string& sealed) {
  return *Base64Decode(sealed.substr(sealed.rfind(':') + 1));
}

std::string WithBody(const std::string& sealed, const std::string& body) {
  return absl::StrCat(sealed.substr(0, sealed.rfind(':') + 1),
                      Base64Encode(body));
}

TEST(SecretBox, SealsAndOpensUnderTheFirstKey) {
  SecretBox box = MustBox({{"k2", Key('b')}, {"k1", Key('a')}});
  const std::string sealed = box.Seal("whsec_abc", "handler h1 secret");
  EXPECT_TRUE(absl::StartsWith(sealed, "rio:v1:k2:")) << sealed;
  EXPECT_FALSE(absl::StrContains(sealed, "whsec_abc"));
  EXPECT_EQ(*SealedKeyId(sealed), "k2");
  EXPECT_TRUE(LooksSealed(sealed));
  // 12-byte nonce + 9 bytes + 16-byte tag.
  EXPECT_EQ(Body(sealed).size(), 12u + 9u + 16u);
  absl::StatusOr<std::string> opened = box.Open(sealed, "handler h1 secret");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "whsec_abc");
  EXPECT_EQ(box.sealing_key_id(), "k2");
}

TEST(SecretBox, RoundTripsEmptyAndBinaryValues) {
  SecretBox box = MustBox({{"k", Key('a')}});
  for (const std::string& value :
       {std::string(), std::string("\0\xff\n", 3), std::string(70000, 'x')}) {
    absl::StatusOr<std::string> opened = box.Open(box.Seal(value, "c"), "c");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, value);
  }
}

TEST(SecretBox, UsesAFreshNonceForEveryValue) {
  SecretBox box = MustBox({{"k", Key('a')}});
  std::set<std::string> nonces;
  std::set<std::string> sealed;
  for (int i = 0; i < 100; ++i) {
    std::string s = box.Seal("same", "same");
    nonces.insert(Body(s).substr(0, 12));
    sealed.insert(s);
  }
  EXPECT_EQ(nonces.size(), 100u);
  EXPECT_EQ(sealed.size(), 100u);
}

// The envelope is plain AES-256-GCM: a value sealed by another
// implementation (Python's cryptography package, AESGCM(key).encrypt(nonce,
// b"whsec_test", b"rio:v1:k1:ctx")) opens.
TEST(SecretBox, OpensAValueSealedByAnotherAesGcmImplementation) {
  std::string key;
  for (int i = 0; i < 32; ++i) key.push_back(static_cast<char>(i));
  SecretBox box = MustBox({{"k1", key}});
  absl::StatusOr<std::string> opened = box.Open(
      "rio:v1:k1:AAECAwQFBgcICQoLMGqlfqa6tn7+NS6WWJopCoM1TeDdMehjvqg=", "ctx");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "whsec_test");
}

TEST(SecretBox, TamperedValueIsDataLossNamingTheKey) {
  SecretBox box = MustBox({{"k1", Key('a')}});
  const std::string sealed = box.Seal("whsec_abc", "ctx");
  const std::string body = Body(sealed);
  // Every byte: nonce, ciphertext and tag.
  for (size_t i = 0; i < body.size(); ++i) {
    std::string altered = body;
    altered[i] ^= 0x01;
    absl::StatusOr<std::string> opened =
        box.Open(WithBody(sealed, altered), "ctx");
    ASSERT_FALSE(opened.ok()) << "byte " << i;
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(opened.status().message(), HasSubstr("key \"k1\""));
  }
  // Truncated tag.
  absl::StatusOr<std::string> truncated =
      box.Open(WithBody(sealed, body.substr(0, body.size() - 1)), "ctx");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
}

TEST(SecretBox, ValueFromAnotherContextDoesNotOpen) {
  SecretBox box = MustBox({{"k1", Key('a')}});
  absl::StatusOr<std::string> opened =
      box.Open(box.Seal("whsec_abc", "handler a secret"), "handler b secret");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
}

TEST(SecretBox, WrongKeyUnderTheSameIdIsDataLossNamingTheKey) {
  SecretBox sealer = MustBox({{"prod-1", Key('a')}});
  SecretBox opener = MustBox({{"prod-1", Key('b')}});
  absl::StatusOr<std::string> opened =
      opener.Open(sealer.Seal("whsec_abc", "ctx"), "ctx");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(opened.status().message(), HasSubstr("key \"prod-1\""));
}

TEST(SecretBox, RelabelledKeyIdDoesNotOpen) {
  // Both keys equal: only the authenticated key id tells them apart.
  SecretBox box = MustBox({{"k1", Key('a')}, {"k2", Key('a')}});
  std::string sealed = box.Seal("whsec_abc", "ctx");
  sealed.replace(0, std::string("rio:v1:k1").size(), "rio:v1:k2");
  EXPECT_EQ(box.Open(sealed, "ctx").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(SecretBox, UnknownKeyIdIsNotFoundNamingTheKey) {
  SecretBox old_box = MustBox({{"old", Key('a')}});
  SecretBox new_box = MustBox({{"new", Key('b')}});
  absl::StatusOr<std::string> opened =
      new_box.Open(old_box.Seal("whsec_abc", "ctx"), "ctx");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(opened.status().message(),
              HasSubstr("sealed under key \"old\", which is not in the "
                        "secret key file"));
}

TEST(SecretBox, OpensValuesOfEveryKeyInTheBox) {
  SecretBox old_box = MustBox({{"old", Key('a')}});
  SecretBox rotated = MustBox({{"new", Key('b')}, {"old", Key('a')}});
  const std::string sealed = old_box.Seal("v", "ctx");
  EXPECT_EQ(*rotated.Open(sealed, "ctx"), "v");
  EXPECT_EQ(*SealedKeyId(rotated.Seal("v", "ctx")), "new");
  EXPECT_TRUE(rotated.HasKey("old"));
  EXPECT_FALSE(rotated.HasKey("gone"));
  EXPECT_EQ(rotated.key_ids(), (std::vector<std::string>{"new", "old"}));
}

TEST(SecretBox, MalformedValuesAreInvalidArgument) {
  SecretBox box = MustBox({{"k1", Key('a')}});
  for (const char* value :
       {"", "whsec_abc", "rio:v1:", "rio:v1:k1", "rio:v1::QUJD",
        "rio:v2:k1:QUJDRA==", "rio:v1:k 1:QUJDRA==", "rio:v1:k1:not base64",
        "rio:v1:k1:QUJDRA=="}) {
    absl::StatusOr<std::string> opened = box.Open(value, "ctx");
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument)
        << value;
    EXPECT_FALSE(LooksSealed(value)) << value;
    EXPECT_FALSE(SealedKeyId(value).ok()) << value;
  }
}

TEST(SecretBox, CreateRefusesBadKeys) {
  EXPECT_EQ(SecretBox::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SecretBox::Create({{"k", std::string(16, 'a')}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      SecretBox::Create({{"k", Key('a')}, {"k", Key('b')}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SecretBox::Create({{"a:b", Key('a')}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SecretKeyFile, ParsesKeysInOrderSkippingCommentsAndBlankLines) {
  const std::string a = Base64Encode(Key('a'));
  const std::string b = Base64Encode(Key('b'));
  absl::StatusOr<std::vector<SecretKey>> keys = ParseSecretKeyFile(absl::StrCat(
      "# rotated 2026-01\n\n2026-01 ", b, "\r\n  2025.07\t", a, "  \n"));
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, "2026-01");
  EXPECT_EQ((*keys)[0].key, Key('b'));
  EXPECT_EQ((*keys)[1].id, "2025.07");
  EXPECT_EQ((*keys)[1].key, Key('a'));
}

TEST(SecretKeyFile, RefusesMalformedFilesNamingTheLine) {
  const std::string a = Base64Encode(Key('a'));
  const std::string short_key = Base64Encode(std::string(16, 'a'));
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "no key"},
      {"# only a comment\n", "no key"},
      {"k1\n", "line 1: expected \"KEY_ID BASE64_KEY\""},
      {absl::StrCat("k1 ", a, " extra\n"), "line 1: expected"},
      {absl::StrCat("\nk:1 ", a), "line 2: key id may hold only"},
      {absl::StrCat(std::string(65, 'k'), " ", a), "line 1: key id must be"},
      {"k1 not-base64!", "line 1: the key of \"k1\" is not standard base64"},
      {absl::StrCat("k1 ", short_key),
       "line 1: the key of \"k1\" is 16 bytes; AES-256 needs 32"},
      {absl::StrCat("k1 ", a, "\nk1 ", Base64Encode(Key('b'))),
       "line 2: key id \"k1\" appears twice"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<SecretKey>> keys = ParseSecretKeyFile(c.text);
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(keys.status().message(), HasSubstr(c.message)) << c.text;
    // Never the key material.
    EXPECT_FALSE(absl::StrContains(keys.status().message(), a));
  }
}

class SecretKeyFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/rio-keys-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/secret_key";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  void Write(const std::string& text, mode_t mode) {
    unlink(path_.c_str());
    std::ofstream(path_) << text;
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
  }
  std::string dir_;
  std::string path_;
};

TEST_F(SecretKeyFileOnDisk, ReadsAnOwnerOnlyFile) {
  Write(absl::StrCat("k1 ", Base64Encode(Key('a')), "\n"), 0600);
  absl::StatusOr<std::vector<SecretKey>> keys = ReadSecretKeyFile(path_);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->at(0).id, "k1");
  Write(absl::StrCat("k1 ", Base64Encode(Key('a')), "\n"), 0400);
  EXPECT_TRUE(ReadSecretKeyFile(path_).ok());
}

TEST_F(SecretKeyFileOnDisk, RefusesAFileOthersMayRead) {
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    Write(absl::StrCat("k1 ", Base64Encode(Key('a')), "\n"), mode);
    absl::StatusOr<std::vector<SecretKey>> keys = ReadSecretKeyFile(path_);
    ASSERT_FALSE(keys.ok()) << std::oct << mode;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(keys.status().message(),
                HasSubstr("group or others may access it"));
    EXPECT_THAT(keys.status().message(),
                HasSubstr(absl::StrCat("chmod 600 ", path_)));
  }
}

TEST_F(SecretKeyFileOnDisk, NamesThePathOfAMissingOrMalformedFile) {
  absl::StatusOr<std::vector<SecretKey>> missing = ReadSecretKeyFile(path_);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(),
              HasSubstr(path_ + ": No such file or directory"));
  Write("k1 c2hvcnQ=\n", 0600);
  absl::StatusOr<std::vector<SecretKey>> malformed = ReadSecretKeyFile(path_);
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(malformed.status().message(),
              HasSubstr(path_ + ": line 1: the key of \"k1\" is 5 bytes"));
}

}  // namespace
}  // namespace rio::util
