#include "server/util/utf8.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace rio::util {
namespace {

constexpr char kFffd[] = "\xEF\xBF\xBD";

TEST(ToValidUtf8, KeepsValidTextUnchanged) {
  for (const std::string& text :
       {std::string(""), std::string("plain ascii {\"a\":1}"),
        std::string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
        std::string("nul\0inside", 10), std::string("\xF4\x8F\xBF\xBF")}) {
    EXPECT_EQ(ToValidUtf8(text), text);
  }
}

TEST(ToValidUtf8, ReplacesEachMaximalIllFormedSubpartByOneReplacement) {
  // The example of the Unicode Standard, section 3.9 ("U+FFFD Substitution
  // of Maximal Subparts").
  EXPECT_EQ(ToValidUtf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            absl::StrCat("a", kFffd, kFffd, kFffd, "b", kFffd, "c", kFffd,
                         kFffd, "d"));
}

TEST(ToValidUtf8, RefusesOverlongsSurrogatesAndBeyondU10FFFF) {
  // Overlong '/': C0 never starts a sequence.
  EXPECT_EQ(ToValidUtf8("\xC0\xAF"), absl::StrCat(kFffd, kFffd));
  // Overlong 3-byte form of U+007F.
  EXPECT_EQ(ToValidUtf8("\xE0\x81\xBF"), absl::StrCat(kFffd, kFffd, kFffd));
  // Surrogate U+D800.
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), absl::StrCat(kFffd, kFffd, kFffd));
  // U+110000.
  EXPECT_EQ(ToValidUtf8("\xF4\x90\x80\x80"),
            absl::StrCat(kFffd, kFffd, kFffd, kFffd));
  EXPECT_EQ(ToValidUtf8("\xFF\xFE"), absl::StrCat(kFffd, kFffd));
}

TEST(ToValidUtf8, ReplacesTruncatedSequences) {
  EXPECT_EQ(ToValidUtf8("ok\xE2\x82"), absl::StrCat("ok", kFffd));
  EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98"
                        "A"),
            absl::StrCat(kFffd, "A"));
  EXPECT_EQ(ToValidUtf8("\xC3"), kFffd);
}

TEST(ToValidUtf8, BinaryBecomesValidUtf8OfTheSameShape) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::string text = ToValidUtf8(all_bytes);
  // 128 ASCII bytes stay; each of the 128 others is ill-formed on its own.
  EXPECT_EQ(text, absl::StrCat(all_bytes.substr(0, 128), [] {
              std::string r;
              for (int i = 0; i < 128; ++i) r += kFffd;
              return r;
            }()));
  EXPECT_EQ(ToValidUtf8(text), text);
}

}  // namespace
}  // namespace rio::util
