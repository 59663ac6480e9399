#include "server/util/json.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace rio::util {
namespace {

using Members = std::vector<std::pair<std::string, std::string>>;

Members CollectMembers(absl::string_view object) {
  Members members;
  ForEachMember(object, [&](const std::string& key, absl::string_view raw) {
    members.emplace_back(key, std::string(raw));
  });
  return members;
}

// The message ValidateJsonObject gives for `text`, or "OK".
std::string ErrorOf(absl::string_view text) {
  absl::Status status = ValidateJsonObject("payload", text);
  if (status.ok()) return "OK";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(status.message());
}

TEST(ValidateJsonObject, AcceptsObjectsWithSurroundingWhitespace) {
  for (const char* good : {
           "{}",
           " {} ",
           "\n\t{ }\r\n",
           R"({"a":1})",
           R"({"a":{"b":[1,2,{"c":null}]},"d":[],"e":{}})",
           R"({"":"", "a":"b", "a":"duplicate keys are allowed"})",
           R"({ "t" : true , "f" : false , "n" : null })",
       }) {
    EXPECT_EQ(ErrorOf(good), "OK") << good;
  }
}

TEST(ValidateJsonObject, AcceptsEveryNumberForm) {
  for (const char* number :
       {"0", "-0", "7", "-12", "1.5", "-0.25", "1e10", "1E+2", "2e-3",
        "-1.0e-3", "0.0", "12345678901234567890", "1e999"}) {
    EXPECT_EQ(ErrorOf(absl::StrCat(R"({"n":)", number, "}")), "OK") << number;
  }
}

TEST(ValidateJsonObject, AcceptsEscapesAndUtf8) {
  for (const char* good : {
           R"({"s":"\" \\ \/ \b \f \n \r \t"})",
           R"({"s":"\u0000 \u00e9 \u20AC \uffff"})", R"({"s":"\ud83d\ude00"})",
           "{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
           "{\"s\":\"\xef\xbf\xbf \xf4\x8f\xbf\xbf \xed\x9f\xbf\"}",
           "{\"s\":\"\x7f\"}",  // DEL is not a control character in JSON.
       }) {
    EXPECT_EQ(ErrorOf(good), "OK") << good;
  }
}

TEST(ValidateJsonObject, RejectsNonObjectsThatAreValidJson) {
  for (const char* other : {"[]", "[1,2]", R"("s")", "1", "true", "null"}) {
    absl::Status status = ValidateJsonObject("payload", other);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << other;
    EXPECT_EQ(status.message(), "payload must be a JSON object") << other;
  }
}

TEST(ValidateJsonObject, ReportsStructureErrorsWithOffsets) {
  struct Case {
    std::string text;
    const char* message;
  } cases[] = {
      {"", "unexpected end of input at byte 0"},
      {"   ", "unexpected end of input at byte 3"},
      {"x", "unexpected character 'x' at byte 0"},
      {"{", "unexpected end of input at byte 1"},
      {R"({"a":1)", "unexpected end of input at byte 6"},
      {R"({"a":)", "unexpected end of input at byte 5"},
      {R"({"a":1,})", "unexpected character '}' at byte 7"},
      {R"({"a" 1})", "unexpected character '1' at byte 5"},
      {R"({a:1})", "unexpected character 'a' at byte 1"},
      {R"({'a':1})", "unexpected character ''' at byte 1"},
      {R"({"a":1 "b":2})", "unexpected character '\"' at byte 7"},
      {R"({"a":[1,]})", "unexpected character ']' at byte 8"},
      {R"({"a":[1}})", "unexpected character '}' at byte 7"},
      {R"({"a":tru})", "unexpected character '}' at byte 8"},
      {R"({"a":True})", "unexpected character 'T' at byte 5"},
      {R"({"a":nul)", "unexpected end of input at byte 8"},
      {R"({"a":undefined})", "unexpected character 'u' at byte 5"},
      {"{} {}", "trailing characters at byte 3"},
      {"{}x", "trailing characters at byte 2"},
      {"{}}", "trailing characters at byte 2"},
      {std::string("{}\0", 3), "trailing characters at byte 2"},
      {"\x01{}", "unexpected character '\\x01' at byte 0"},
      {"\xef\xbb\xbf{}", "unexpected character '\\xef' at byte 0"},
      // Not an object, and not valid either: the syntax error wins.
      {"[1,", "unexpected end of input at byte 3"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(c.text),
              absl::StrCat("payload is not valid JSON: ", c.message))
        << c.text;
  }
}

TEST(ValidateJsonObject, ReportsNumberErrors) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {R"({"a":01})", "leading zero in number at byte 5"},
      {R"({"a":-01})", "leading zero in number at byte 6"},
      {R"({"a":-})", "invalid number at byte 6"},
      {R"({"a":-Infinity})", "invalid number at byte 6"},
      {R"({"a":1.})", "invalid number at byte 7"},
      {R"({"a":1.e3})", "invalid number at byte 7"},
      {R"({"a":1e})", "invalid number at byte 7"},
      {R"({"a":1e+})", "invalid number at byte 8"},
      {R"({"a":1)", "unexpected end of input at byte 6"},
      {R"({"a":1.)", "unexpected end of input at byte 7"},
      {R"({"a":.5})", "unexpected character '.' at byte 5"},
      {R"({"a":+1})", "unexpected character '+' at byte 5"},
      {R"({"a":NaN})", "unexpected character 'N' at byte 5"},
      {R"({"a":0x10})", "unexpected character 'x' at byte 6"},
      {R"({"a":1.5.3})", "unexpected character '.' at byte 8"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(c.text),
              absl::StrCat("payload is not valid JSON: ", c.message))
        << c.text;
  }
}

TEST(ValidateJsonObject, ReportsStringErrors) {
  struct Case {
    std::string text;
    const char* message;
  } cases[] = {
      {R"({"a":"b)", "unterminated string at byte 5"},
      {R"({"a":"b\)", "unterminated string at byte 5"},
      {R"({"a":"\u12)", "unterminated string at byte 5"},
      {R"({"a)", "unterminated string at byte 1"},
      {R"({"a":"\q"})", "invalid escape at byte 6"},
      {R"({"a":"\x41"})", "invalid escape at byte 6"},
      {R"({"a":"\U0041"})", "invalid escape at byte 6"},
      {R"({"a":"\u12G4"})", "invalid escape at byte 6"},
      {R"({"a":"x\ud800\uZZZZ"})", "invalid escape at byte 13"},
      {R"({"a":"\ud800"})", "unpaired UTF-16 surrogate at byte 6"},
      {R"({"a":"\udc00"})", "unpaired UTF-16 surrogate at byte 6"},
      {R"({"a":"\ud800\u0041"})", "unpaired UTF-16 surrogate at byte 6"},
      {R"({"a":"\ude00\ud83d"})", "unpaired UTF-16 surrogate at byte 6"},
      {R"({"a":"\ud800x"})", "unpaired UTF-16 surrogate at byte 6"},
      {"{\"a\":\"x\ny\"}", "unescaped control character in string at byte 7"},
      {"{\"a\":\"\t\"}", "unescaped control character in string at byte 6"},
      {std::string("{\"a\":\"\0\"}", 9),
       "unescaped control character in string at byte 6"},
      {"{\"a\":\"\xff\"}", "invalid UTF-8 at byte 6"},
      {"{\"a\":\"\x80\"}", "invalid UTF-8 at byte 6"},
      {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8 at byte 6"},      // Overlong.
      {"{\"a\":\"\xe0\x80\xaf\"}", "invalid UTF-8 at byte 6"},  // Overlong.
      {"{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8 at byte 6"},  // Surrogate.
      {"{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 at byte 6"},  // >10FFFF
      {"{\"a\":\"ok\xe2\x82\"}", "invalid UTF-8 at byte 8"},  // Truncated.
      {"{\"a\":\"\xe2\x82", "invalid UTF-8 at byte 6"},
      {"{\"\xc3\":1}", "invalid UTF-8 at byte 2"},  // Keys are checked too.
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ErrorOf(c.text),
              absl::StrCat("payload is not valid JSON: ", c.message))
        << c.text;
  }
}

std::string Nested(int depth) {
  // The top-level object is level 1; each '[' adds one.
  return absl::StrCat(R"({"a":)", std::string(depth - 1, '['),
                      std::string(depth - 1, ']'), "}");
}

TEST(ValidateJsonObject, AcceptsNestingOf512) {
  EXPECT_EQ(ErrorOf(Nested(kMaxJsonDepth)), "OK");
  std::string objects;
  for (int i = 1; i < kMaxJsonDepth; ++i) objects += R"({"a":)";
  objects += "{}";
  for (int i = 1; i < kMaxJsonDepth; ++i) objects += "}";
  EXPECT_EQ(ErrorOf(objects), "OK");
}

TEST(ValidateJsonObject, RejectsNestingOf513AtTheOpeningBracket) {
  // 5 bytes of {"a": then 511 brackets reach depth 512; the next one fails.
  EXPECT_EQ(ErrorOf(Nested(kMaxJsonDepth + 1)),
            "payload is not valid JSON: nesting deeper than 512 at byte 516");
}

TEST(ValidateJsonObject, SurvivesHostileNestingWithoutRecursion) {
  const std::string hostile = "{\"a\":" + std::string(1 << 20, '[');
  EXPECT_EQ(ErrorOf(hostile),
            "payload is not valid JSON: nesting deeper than 512 at byte 516");
}

TEST(ValidateJsonObject, HandlesOneMebibytePayloads) {
  // Many small members plus one long string with escapes and UTF-8.
  std::string payload = "{";
  for (int i = 0; i < 10000; ++i) {
    absl::StrAppend(&payload, "\"k", i, "\": [", i, ", -1.5e3, true, null, ",
                    "{\"s\": \"x\\n\\u00e9\"}], ");
  }
  payload += "\"long\": \"";
  const absl::string_view chunk = "abc \xc3\xa9\\\" ";
  while (payload.size() + chunk.size() + 2 <= (1 << 20)) {
    absl::StrAppend(&payload, chunk);
  }
  payload.append((1 << 20) - 2 - payload.size(), 'z');
  payload += "\"}";
  ASSERT_EQ(payload.size(), 1u << 20);
  ASSERT_EQ(ErrorOf(payload), "OK");

  int members = 0;
  std::string last_key;
  size_t last_value_size = 0;
  ForEachMember(payload, [&](const std::string& key, absl::string_view raw) {
    ++members;
    last_key = key;
    last_value_size = raw.size();
  });
  EXPECT_EQ(members, 10001);
  EXPECT_EQ(last_key, "long");
  EXPECT_GT(last_value_size, 400000u);
  EXPECT_LT(CompactJson(payload).size(), payload.size());

  // An error at the very end is found and located.
  payload.back() = ']';
  EXPECT_EQ(ErrorOf(payload),
            absl::StrCat("payload is not valid JSON: unexpected character ']' "
                         "at byte ",
                         payload.size() - 1));
}

TEST(ForEachMember, VisitsMembersInDocumentOrder) {
  EXPECT_EQ(CollectMembers(R"({"z":1,"a":2,"m":3,"a":4})"),
            (Members{{"z", "1"}, {"a", "2"}, {"m", "3"}, {"a", "4"}}));
}

TEST(ForEachMember, KeepsBigIntegersVerbatim) {
  EXPECT_EQ(CollectMembers(R"({"big": 12345678901234567890})"),
            (Members{{"big", "12345678901234567890"}}));
  EXPECT_EQ(CollectMembers(R"({"f":1.50e+10,"neg":-0})"),
            (Members{{"f", "1.50e+10"}, {"neg", "-0"}}));
}

TEST(ForEachMember, GivesExactRawValuesWithoutSurroundingWhitespace) {
  const char* object =
      "{ \"s\" : \"a \\\"}\\\" b\" ,\n"
      "  \"o\" : { \"x\" : [ 1 , \"]}\" ] } ,\n"
      "  \"a\" : [ ] , \"t\":true,\"f\" :false , "
      "\"n\":null }";
  EXPECT_EQ(CollectMembers(object), (Members{{"s", R"("a \"}\" b")"},
                                             {"o", R"({ "x" : [ 1 , "]}" ] })"},
                                             {"a", "[ ]"},
                                             {"t", "true"},
                                             {"f", "false"},
                                             {"n", "null"}}));
}

TEST(ForEachMember, DecodesKeys) {
  EXPECT_EQ(CollectMembers(R"({"a\"b":1,"\u00e9t\u00e9":2,"\ud83d\ude00":3})"),
            (Members{{"a\"b", "1"},
                     {"\xc3\xa9t\xc3\xa9", "2"},
                     {"\xf0\x9f\x98\x80", "3"}}));
}

TEST(ForEachMember, CallsNothingForAnEmptyObject) {
  EXPECT_TRUE(CollectMembers("{}").empty());
  EXPECT_TRUE(CollectMembers(" { \n } ").empty());
}

TEST(ForEachMember, StaysInBoundsOnUnvalidatedInput) {
  // Unspecified results, but no crash or out-of-bounds read (ASan-checked).
  for (const char* bad : {"", "[1]", "{", R"({"a)", R"({"a":)", R"({"a":"x)",
                          R"({"a":[1,{)", R"({"a":1,)", "{\"a\\"}) {
    CollectMembers(bad);
  }
}

TEST(DecodeJsonString, ResolvesSimpleEscapes) {
  EXPECT_EQ(DecodeJsonString(R"("")"), "");
  EXPECT_EQ(DecodeJsonString(R"("plain")"), "plain");
  EXPECT_EQ(DecodeJsonString(R"("a\"b\\c\/d\b\f\n\r\t")"),
            "a\"b\\c/d\b\f\n\r\t");
}

TEST(DecodeJsonString, EncodesUnicodeEscapesAsUtf8) {
  EXPECT_EQ(DecodeJsonString(R"("\u0041\u00e9\u20AC\uFFFF")"),
            "A\xc3\xa9\xe2\x82\xac\xef\xbf\xbf");
  EXPECT_EQ(DecodeJsonString(R"("\u0000")"), std::string(1, '\0'));
  EXPECT_EQ(DecodeJsonString(R"("x\ud83d\ude00y")"), "x\xf0\x9f\x98\x80y");
  EXPECT_EQ(DecodeJsonString(R"("\udbff\udfff")"), "\xf4\x8f\xbf\xbf");
  EXPECT_EQ(DecodeJsonString("\"caf\xc3\xa9\""), "caf\xc3\xa9");
}

TEST(DecodeJsonString, ReplacesLoneSurrogatesWithReplacementCharacter) {
  EXPECT_EQ(DecodeJsonString(R"("\ud800")"), "\xef\xbf\xbd");
  EXPECT_EQ(DecodeJsonString(R"("\udc00x")"), "\xef\xbf\xbdx");
  EXPECT_EQ(DecodeJsonString(R"("\ud800\u0041")"),
            "\xef\xbf\xbd"
            "A");
}

TEST(CompactJson, RemovesWhitespaceOutsideStrings) {
  EXPECT_EQ(CompactJson(" { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : \"x  y\" } "),
            R"({"a":[1,2],"b":"x  y"})");
  EXPECT_EQ(CompactJson(R"([ "a \" b" , "\\" , "c" ])"),
            R"(["a \" b","\\","c"])");
  EXPECT_EQ(CompactJson("12345678901234567890"), "12345678901234567890");
  EXPECT_EQ(CompactJson("\"\t x \""), "\"\t x \"");
}

}  // namespace
}  // namespace rio::util
