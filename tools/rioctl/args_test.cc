#include "tools/rioctl/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rio::rioctl {
namespace {

using ::testing::ElementsAre;
using K = FlagDef::Kind;

const std::vector<FlagDef> kFlags = {
    {"output", 'o', K::kValue, "FORMAT", ""},
    {"dry-run", 0, K::kBool, "", ""},
    {"header", 'H', K::kRepeat, "H", ""},
};

TEST(Args, ParsesValuesBoolsRepeatsAndPositionals) {
  absl::StatusOr<Args> args =
      ParseArgs({"a", "--output", "json", "-H", "X: 1", "--header=Y=2", "b",
                 "--dry-run", "-", "--", "--not-a-flag"},
                kFlags);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positional(), ElementsAre("a", "b", "-", "--not-a-flag"));
  EXPECT_EQ(args->Get("output"), "json");
  EXPECT_THAT(args->GetAll("header"), ElementsAre("X: 1", "Y=2"));
  EXPECT_TRUE(args->Bool("dry-run"));
  EXPECT_FALSE(args->Has("missing"));
  EXPECT_EQ(args->Get("missing", "dflt"), "dflt");
}

TEST(Args, ShorthandForms) {
  for (const char* form : {"-ojson", "-o=json"}) {
    absl::StatusOr<Args> args = ParseArgs({form}, kFlags);
    ASSERT_TRUE(args.ok()) << form;
    EXPECT_EQ(args->Get("output"), "json") << form;
  }
}

TEST(Args, BoolTakesExplicitValues) {
  absl::StatusOr<Args> args = ParseArgs({"--dry-run=false"}, kFlags);
  ASSERT_TRUE(args.ok());
  EXPECT_TRUE(args->Has("dry-run"));
  EXPECT_FALSE(args->Bool("dry-run"));
  EXPECT_EQ(ParseArgs({"--dry-run=maybe"}, kFlags).status().message(),
            "--dry-run takes no value, or =true or =false (got \"maybe\")");
}

TEST(Args, Errors) {
  EXPECT_EQ(ParseArgs({"--nope=1"}, kFlags).status().message(),
            "unknown flag --nope");
  EXPECT_EQ(ParseArgs({"-x"}, kFlags).status().message(), "unknown flag -x");
  EXPECT_EQ(ParseArgs({"--output"}, kFlags).status().message(),
            "--output needs a value (FORMAT)");
}

TEST(Durations, Parse) {
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("1h30m"), 5400000);
  EXPECT_EQ(*ParseDurationMs("7d"), 7 * 86400000LL);
  EXPECT_EQ(*ParseDurationMs("1d12h"), 36 * 3600000LL);
  EXPECT_EQ(*ParseDurationMs("2.5s"), 2500);
  for (const char* bad : {"", "5", "abc", "-1s", "1x", "d"}) {
    EXPECT_FALSE(ParseDurationMs(bad).ok()) << bad;
  }
}

TEST(Durations, Format) {
  EXPECT_EQ(FormatDurationMs(15000), "15s");
  EXPECT_EQ(FormatDurationMs(500), "500ms");
  EXPECT_EQ(FormatDurationMs(2500), "2.5s");
  EXPECT_EQ(FormatDurationMs(90000), "1m30s");
  EXPECT_EQ(FormatDurationMs(3600000), "1h");
  EXPECT_EQ(FormatDurationMs(0), "0s");
}

TEST(ParseExpiry, DurationFromNowOrRfc3339InTheFuture) {
  const absl::Time now = absl::FromUnixSeconds(1714564863);
  EXPECT_EQ(*ParseExpiry("30d", now), now + absl::Hours(24 * 30));
  EXPECT_EQ(*ParseExpiry("12h", now), now + absl::Hours(12));
  EXPECT_EQ(*ParseExpiry("1d12h", now), now + absl::Hours(36));
  EXPECT_EQ(*ParseExpiry("2030-01-01T00:00:00Z", now),
            absl::FromUnixSeconds(1893456000));
  EXPECT_EQ(*ParseExpiry("2030-01-01T02:00:00+02:00", now),
            absl::FromUnixSeconds(1893456000));
  EXPECT_EQ(ParseExpiry("soon", now).status(),
            absl::InvalidArgumentError(
                "\"soon\" is neither a duration from now (12h, 30d) nor an "
                "RFC 3339 time (2030-01-01T00:00:00Z)"));
  EXPECT_EQ(ParseExpiry("", now).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseExpiry("2020-01-01T00:00:00Z", now).status(),
            absl::InvalidArgumentError(
                "\"2020-01-01T00:00:00Z\" is not in the future"));
  EXPECT_EQ(ParseExpiry("0s", now).status(),
            absl::InvalidArgumentError("\"0s\" is not in the future"));
}

}  // namespace
}  // namespace rio::rioctl
