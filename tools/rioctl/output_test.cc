#include "tools/rioctl/output.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rio/v1/delivery.pb.h"
#include "rio/v1/handler.pb.h"

namespace rio::rioctl {
namespace {

TEST(Table, AlignsColumnsAndTrimsTheLastOne) {
  Table table({"SLUG", "NAME", "AGE"});
  table.AddRow({"comments", "Comments", "5m"});
  table.AddRow({"a", "", "12s"});
  EXPECT_EQ(table.Render(),
            "SLUG       NAME       AGE\n"
            "comments   Comments   5m\n"
            "a                     12s\n");
}

TEST(Table, ColourTakesNoColumn) {
  Table table({"A", "B"});
  table.AddRow({"\033[31mred\033[0m", "x"});
  table.AddRow({"plain", "y"});
  EXPECT_EQ(table.Render(),
            "A       B\n"
            "\033[31mred\033[0m     x\n"
            "plain   y\n");
}

TEST(Fields, AlignsValues) {
  EXPECT_EQ(RenderFields({{"ID", "x"}, {"Content type", "json"}, {"E", ""}}),
            "ID:            x\n"
            "Content type:  json\n"
            "E:\n");
}

v1::Handler SampleHandler() {
  v1::Handler h;
  h.set_id("h1");
  h.set_event("example");
  h.set_url("http://127.0.0.1:5000");
  h.set_method(v1::Handler::PUT);
  h.set_timeout_ms(15000);
  (*h.mutable_headers())["X-Team"] = "antispam";
  h.mutable_create_time()->set_seconds(1714564803);
  return h;
}

TEST(Json, FieldNamesAsInTheProtoEveryFieldPresent) {
  std::string json = ToJson(SampleHandler());
  EXPECT_EQ(json,
            "{\n"
            "  \"id\": \"h1\",\n"
            "  \"project\": \"\",\n"
            "  \"event\": \"example\",\n"
            "  \"url\": \"http://127.0.0.1:5000\",\n"
            "  \"method\": \"PUT\",\n"
            "  \"content_type\": \"CONTENT_TYPE_UNSPECIFIED\",\n"
            "  \"headers\": {\n"
            "    \"X-Team\": \"antispam\"\n"
            "  },\n"
            "  \"timeout_ms\": 15000,\n"
            "  \"enabled\": false,\n"
            "  \"disabled_reason\": \"\",\n"
            "  \"secret\": \"\",\n"
            "  \"client_certificate\": \"\",\n"
            "  \"client_key\": \"\",\n"
            "  \"create_time\": \"2024-05-01T12:00:03Z\"\n"
            "}\n");
  v1::Handler other;
  other.set_id("h2");
  EXPECT_EQ(ToJsonArray({}), "[]\n");
  EXPECT_THAT(ToJsonArray({&other}),
              ::testing::StartsWith("[\n  {\n    \"id\": \"h2\","));
}

TEST(Yaml, QuotesWhatWouldReadAsAnotherType) {
  v1::Delivery d;
  d.set_id("123");
  d.set_event("true");
  d.set_handler_url("http://a/b");
  d.set_last_error_class("");
  d.set_attempt_count(2);
  v1::Attempt* a = d.add_attempts();
  a->set_number(1);
  a->set_response_body("line 1\nline: 2");
  auto* h = a->add_response_headers();
  h->set_name("content-type");
  h->set_value("text/plain");
  std::string yaml = ToYaml(d);
  EXPECT_THAT(yaml, ::testing::HasSubstr("id: \"123\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("event: \"true\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("handler_url: http://a/b\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("last_error_class: \"\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("attempt_count: 2\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("attempts:\n"
                                         "- delivery_id: \"\"\n"
                                         "  number: 1\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("  response_headers:\n"
                                         "  - name: content-type\n"
                                         "    value: text/plain\n"));
  EXPECT_THAT(yaml,
              ::testing::HasSubstr("  response_body: \"line 1\\nline: 2\"\n"));
}

TEST(JsonObject, BuildsInOrder) {
  std::string json = JsonObject()
                         .Add("kind", "project")
                         .Add("count", 3)
                         .Add("ok", true)
                         .AddRaw("list", JsonStringArray({"a", "b\"c"}))
                         .str();
  EXPECT_EQ(json,
            R"({"kind":"project","count":3,"ok":true,"list":["a","b\"c"]})");
  EXPECT_EQ(PrettyJson(json),
            "{\n  \"kind\": \"project\",\n  \"count\": 3,\n  \"ok\": true,\n"
            "  \"list\": [\n    \"a\",\n    \"b\\\"c\"\n  ]\n}\n");
  EXPECT_EQ(JsonToYaml(json),
            "kind: project\ncount: 3\nok: true\nlist:\n- a\n- b\"c\n");
  // What YAML would read as a bool or a number stays a string.
  EXPECT_EQ(JsonToYaml(R"({"n":"no","v":"1.5","t":"~","k":"a: b"})"),
            "\"n\": \"no\"\nv: \"1.5\"\nt: \"~\"\nk: \"a: b\"\n");
}

TEST(Times, AgesAndRfc3339) {
  google::protobuf::Timestamp t;
  t.set_seconds(1714564803);
  absl::Time now = absl::FromUnixSeconds(1714564803);
  EXPECT_EQ(Age(t, now + absl::Seconds(12)), "12s");
  EXPECT_EQ(Age(t, now + absl::Minutes(5)), "5m");
  EXPECT_EQ(Age(t, now + absl::Hours(3)), "3h");
  EXPECT_EQ(Age(t, now + absl::Hours(72)), "3d");
  EXPECT_EQ(Age(google::protobuf::Timestamp(), now), "-");
  EXPECT_EQ(Rfc3339(t), "2024-05-01T12:00:03Z");
  EXPECT_EQ(TimeWithAge(t, now + absl::Minutes(5)),
            "2024-05-01T12:00:03Z (5m ago)");
  EXPECT_EQ(TimeWithAge(t, now - absl::Seconds(4)),
            "2024-05-01T12:00:03Z (in 4s)");
  EXPECT_EQ(Micros(850), "850us");
  EXPECT_EQ(Micros(3400), "3ms");
  EXPECT_EQ(Micros(1200000), "1.2s");
}

TEST(Colours, OnlyWhenEnabled) {
  EXPECT_EQ(Colours(false).Red("x"), "x");
  EXPECT_EQ(Colours(true).Red("x"), "\033[31mx\033[0m");
}

}  // namespace
}  // namespace rio::rioctl
